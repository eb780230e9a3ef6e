//! The KV calls: range (a prefix), create-if-absent, delete-if-value.

use super::{Client, Error};
use serde_json::{json, Value};

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn b64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn unb64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = B64.iter().position(|x| *x == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// A key and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

/// The outcome of [`Client::create`].
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// The key was absent and now holds our value.
    Done,
    /// The key exists (its current value; `None` if it vanished since).
    Exists(Option<Kv>),
}

/// An int64 field: a JSON string (the gateway's form) or a number.
fn int(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn kvs(range: &Value) -> Result<Vec<Kv>, Error> {
    let Some(list) = range.get("kvs") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| Error::Protocol("kvs is not a list".into()))?;
    list.iter()
        .map(|kv| {
            let field = |k: &str| -> Result<Vec<u8>, Error> {
                match kv.get(k) {
                    None => Ok(Vec::new()),
                    Some(v) => v
                        .as_str()
                        .and_then(unb64)
                        .ok_or_else(|| Error::Protocol(format!("{k} is not base64"))),
                }
            };
            Ok(Kv {
                key: field("key")?,
                value: field("value")?,
                mod_revision: int(kv.get("mod_revision")),
            })
        })
        .collect()
}

/// The end of the range of keys starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl Client {
    /// Every key starting with `prefix`, with values, in key order.
    pub fn range_prefix(&mut self, prefix: &[u8]) -> Result<Vec<Kv>, Error> {
        let reply = self.call(
            "/v3/kv/range",
            &json!({"key": b64(prefix), "range_end": b64(&prefix_end(prefix))}),
        )?;
        kvs(&reply)
    }

    /// Several reads in one read-only txn (linearizable, no raft write):
    /// for each `(key, prefix)`, the key alone or every key under it.
    /// `keys_only` leaves values out.
    pub fn read_many(
        &mut self,
        reads: &[(&[u8], bool)],
        keys_only: bool,
    ) -> Result<Vec<Vec<Kv>>, Error> {
        let ops: Vec<Value> = reads
            .iter()
            .map(|(k, prefix)| {
                let mut r = json!({"key": b64(k), "keys_only": keys_only});
                if *prefix {
                    r["range_end"] = json!(b64(&prefix_end(k)));
                }
                json!({"request_range": r})
            })
            .collect();
        let reply = self.call("/v3/kv/txn", &json!({"success": ops}))?;
        let responses = reply.get("responses").and_then(Value::as_array);
        (0..reads.len())
            .map(|i| match responses.and_then(|r| r.get(i)) {
                Some(r) => r.get("response_range").map_or(Ok(Vec::new()), kvs),
                None => Err(Error::Protocol("read txn without its ranges".into())),
            })
            .collect()
    }

    /// Put `key = value` (and `also`) only if `key` does not exist (one
    /// txn: compare `create_revision == 0`); otherwise read it in the same
    /// txn.
    pub fn create(
        &mut self,
        key: &[u8],
        value: &[u8],
        also: &[(&[u8], &[u8])],
    ) -> Result<Created, Error> {
        let k = b64(key);
        let mut puts = vec![json!({"request_put": {"key": k, "value": b64(value)}})];
        for (ak, av) in also {
            puts.push(json!({"request_put": {"key": b64(ak), "value": b64(av)}}));
        }
        let reply = self.call(
            "/v3/kv/txn",
            &json!({
                "compare": [{"target": "CREATE", "result": "EQUAL", "key": k, "create_revision": "0"}],
                "success": puts,
                "failure": [{"request_range": {"key": k}}],
            }),
        )?;
        if reply.get("succeeded").and_then(Value::as_bool) == Some(true) {
            return Ok(Created::Done);
        }
        let range = reply
            .pointer("/responses/0/response_range")
            .ok_or_else(|| Error::Protocol("failed txn without its range".into()))?;
        Ok(Created::Exists(kvs(range)?.into_iter().next()))
    }

    /// Delete `key`, whatever it holds.
    pub fn delete(&mut self, key: &[u8]) -> Result<(), Error> {
        self.call("/v3/kv/deleterange", &json!({"key": b64(key)}))?;
        Ok(())
    }

    /// Delete `key` (and `also`) only if `key` holds exactly `value`;
    /// `false` when it holds something else or is gone.
    pub fn delete_if_value(
        &mut self,
        key: &[u8],
        value: &[u8],
        also: &[&[u8]],
    ) -> Result<bool, Error> {
        let k = b64(key);
        let mut dels = vec![json!({"request_delete_range": {"key": k}})];
        for ak in also {
            dels.push(json!({"request_delete_range": {"key": b64(ak)}}));
        }
        let reply = self.call(
            "/v3/kv/txn",
            &json!({
                "compare": [{"target": "VALUE", "result": "EQUAL", "key": k, "value": b64(value)}],
                "success": dels,
            }),
        )?;
        Ok(reply.get("succeeded").and_then(Value::as_bool) == Some(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            assert_eq!(b64(plain.as_bytes()), enc);
            assert_eq!(unb64(enc).unwrap(), plain.as_bytes());
        }
        assert_eq!(unb64("Zm9v!"), None);
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unb64(&b64(&all)).unwrap(), all);
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
    }

    #[test]
    fn int64s_as_strings_and_missing_kvs() {
        let r: Value = serde_json::from_str(
            r#"{"header":{"revision":"7"},"kvs":[{"key":"Zm9v","value":"YmFy","mod_revision":"5"}],"count":"1"}"#,
        )
        .unwrap();
        assert_eq!(
            kvs(&r).unwrap(),
            [Kv {
                key: b"foo".to_vec(),
                value: b"bar".to_vec(),
                mod_revision: 5
            }]
        );
        assert!(kvs(&json!({"header": {}})).unwrap().is_empty());
    }
}
