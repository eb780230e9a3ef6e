//! Counters for `GET /metrics` (Prometheus text format 0.0.4): CNI
//! requests by applet, command and result, a latency histogram per
//! command, HTTP requests by status, and gauges for what runs now.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    /// Per bucket (not cumulative); the last slot is +Inf.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Counts {
    /// (applet, command, result) -> requests.
    requests: BTreeMap<(String, String, &'static str), u64>,
    /// command -> latency.
    latency: BTreeMap<String, Histogram>,
    /// HTTP status -> responses.
    http: BTreeMap<u16, u64>,
}

#[derive(Default)]
pub struct Metrics {
    counts: Mutex<Counts>,
}

/// A request's outcome as a label: the plugin's exit status.
pub fn result_label(exit_code: i32) -> &'static str {
    match exit_code {
        0 => "ok",
        _ => "error",
    }
}

impl Metrics {
    pub fn cni(&self, applet: &str, command: &str, result: &'static str, took: Duration) {
        // Labels from a closed set: a caller's made-up CNI_COMMAND must not
        // grow the maps (or /metrics) without bound.
        const COMMANDS: &[&str] = &["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"];
        let command = if COMMANDS.contains(&command) {
            command
        } else {
            "invalid"
        };
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *c.requests
            .entry((applet.to_string(), command.to_string(), result))
            .or_default() += 1;
        let h = c.latency.entry(command.to_string()).or_default();
        let secs = took.as_secs_f64();
        let slot = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        h.counts[slot] += 1;
        h.sum += secs;
        h.count += 1;
    }

    pub fn http(&self, status: u16) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *c.http.entry(status).or_default() += 1;
    }

    /// The exposition text; `gauges` are (name, help, value) read now.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut s = String::new();
        s.push_str("# HELP cnibox_daemon_requests_total CNI requests served, by applet, command and result.\n");
        s.push_str("# TYPE cnibox_daemon_requests_total counter\n");
        for ((applet, command, result), n) in &c.requests {
            let _ = writeln!(
                s,
                "cnibox_daemon_requests_total{{applet=\"{}\",command=\"{}\",result=\"{result}\"}} {n}",
                escape(applet),
                escape(command)
            );
        }
        s.push_str("# HELP cnibox_daemon_request_duration_seconds Time to serve a CNI request, by command.\n");
        s.push_str("# TYPE cnibox_daemon_request_duration_seconds histogram\n");
        for (command, h) in &c.latency {
            let command = escape(command);
            let mut cumulative = 0;
            for (i, n) in h.counts.iter().enumerate() {
                cumulative += n;
                let le = BUCKETS
                    .get(i)
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "+Inf".to_string());
                let _ = writeln!(
                    s,
                    "cnibox_daemon_request_duration_seconds_bucket{{command=\"{command}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                s,
                "cnibox_daemon_request_duration_seconds_sum{{command=\"{command}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                s,
                "cnibox_daemon_request_duration_seconds_count{{command=\"{command}\"}} {}",
                h.count
            );
        }
        s.push_str("# HELP cnibox_daemon_http_responses_total HTTP responses, by status.\n");
        s.push_str("# TYPE cnibox_daemon_http_responses_total counter\n");
        for (status, n) in &c.http {
            let _ = writeln!(
                s,
                "cnibox_daemon_http_responses_total{{status=\"{status}\"}} {n}"
            );
        }
        for (name, help, value) in gauges {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        s
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.cni("ptp", "ADD", "ok", Duration::from_millis(3));
        m.cni("ptp", "ADD", "error", Duration::from_secs(20));
        m.http(200);
        let text = m.render(&[("cnibox_daemon_in_flight", "now", 1.0)]);
        assert!(text.contains(
            "cnibox_daemon_requests_total{applet=\"ptp\",command=\"ADD\",result=\"ok\"} 1\n"
        ));
        assert!(text.contains(
            "cnibox_daemon_request_duration_seconds_bucket{command=\"ADD\",le=\"0.005\"} 1\n"
        ));
        assert!(text.contains(
            "cnibox_daemon_request_duration_seconds_bucket{command=\"ADD\",le=\"10\"} 1\n"
        ));
        assert!(text.contains(
            "cnibox_daemon_request_duration_seconds_bucket{command=\"ADD\",le=\"+Inf\"} 2\n"
        ));
        assert!(text.contains("cnibox_daemon_request_duration_seconds_count{command=\"ADD\"} 2\n"));
        assert!(text.contains("cnibox_daemon_http_responses_total{status=\"200\"} 1\n"));
        assert!(text.contains("# TYPE cnibox_daemon_in_flight gauge\ncnibox_daemon_in_flight 1\n"));
        assert_eq!(escape("a\"b\\"), "a\\\"b\\\\");
    }
}
