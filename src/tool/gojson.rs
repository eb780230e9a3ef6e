//! JSON written the way Go's `json.Marshal` writes a `map[string]interface{}`
//! that came from `json.Unmarshal`: compact, keys sorted by bytes at every
//! level, numbers as float64 (`1500.0` is `1500`, `1e21` is `1e+21`, a
//! 20-digit integer loses its low digits), HTML-safe string escaping. libcni
//! re-marshals every plugin config, every injected value and the cache this
//! way, so byte-for-byte compatibility needs it. Also Go's base64 for
//! `[]byte` fields.

use crate::cni::json::{self, GoValue};
use serde_json::{Map, Number, Value};

/// `json.Marshal(v)` of a decoded-into-interface{} value.
pub fn marshal(v: &Value) -> String {
    let mut out = String::new();
    write(&mut out, v);
    out
}

/// A string literal with Go's escaping (`<` is `\u003c`, ...).
pub fn string(s: &str) -> String {
    json::to_go_compact(s)
}

fn write(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number(n)),
        Value::String(s) => out.push_str(&string(s)),
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, item);
            }
            out.push(']');
        }
        Value::Object(m) => write_object(out, m.iter().map(|(k, v)| (k.as_str(), Part::Value(v)))),
    }
}

/// One member of an object being written: a value, or JSON text already
/// marshalled (a result in its own struct order, say).
pub enum Part<'a> {
    Value(&'a Value),
    Raw(&'a str),
}

/// Write an object whose members come in the order given.
pub fn write_object<'a>(out: &mut String, members: impl Iterator<Item = (&'a str, Part<'a>)>) {
    out.push('{');
    for (i, (k, v)) in members.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&string(k));
        out.push(':');
        match v {
            Part::Value(v) => write(out, v),
            Part::Raw(r) => out.push_str(r),
        }
    }
    out.push('}');
}

/// A map's members with some keys replaced or added by raw JSON, written
/// with every key sorted (Go's map marshalling).
pub fn marshal_map_with(base: &Map<String, Value>, extra: &[(&str, &str)]) -> String {
    let mut keys: Vec<&str> = base.keys().map(String::as_str).collect();
    for (k, _) in extra {
        if !keys.contains(k) {
            keys.push(k);
        }
    }
    keys.sort_unstable();
    let mut out = String::new();
    write_object(
        &mut out,
        keys.into_iter().map(|k| {
            let part = match extra.iter().rev().find(|(ek, _)| *ek == k) {
                Some((_, raw)) => Part::Raw(raw),
                None => match base.get(k) {
                    Some(v) => Part::Value(v),
                    None => Part::Raw("null"),
                },
            };
            (k, part)
        }),
    );
    out
}

/// A JSON number as Go prints the float64 it decodes to.
pub fn number(n: &Number) -> String {
    const EXACT: u64 = 1 << 53;
    if let Some(u) = n.as_u64() {
        if u <= EXACT {
            return u.to_string();
        }
    } else if let Some(i) = n.as_i64() {
        if i.unsigned_abs() <= EXACT {
            return i.to_string();
        }
    }
    float(n.as_f64().unwrap_or(0.0))
}

/// `strconv.AppendFloat(f, 'f' or 'e', -1, 64)` as encoding/json picks it:
/// exponent form below 1e-6 and from 1e21, with `e-7` (not `e-07`) but
/// `e+21`.
pub fn float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        match exp.strip_prefix('-') {
            Some(digits) => format!("{mant}e-{digits}"),
            None if exp.len() < 2 => format!("{mant}e+0{exp}"),
            None => format!("{mant}e+{exp}"),
        }
    } else {
        format!("{f}")
    }
}

/// The Go type name `%T` prints for a value decoded into interface{}.
pub fn type_name(v: Option<&GoValue>) -> &'static str {
    match v {
        None | Some(GoValue::Null) => "<nil>",
        Some(GoValue::Bool(_)) => "bool",
        Some(GoValue::Number(_)) => "float64",
        Some(GoValue::String(_)) => "string",
        Some(GoValue::Array(_)) => "[]interface {}",
        Some(GoValue::Object(_)) => "map[string]interface {}",
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (how Go marshals a `[]byte`).
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decode standard padded base64 as Go's `StdEncoding` (which skips `\r`
/// and `\n`); `None` for anything else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let clean: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    if !clean.len().is_multiple_of(4) {
        return None;
    }
    let val = |c: u8| B64.iter().position(|x| *x == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    let quads = clean.len() / 4;
    for (qi, q) in clean.chunks(4).enumerate() {
        let pad = q.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 || (pad > 0 && qi + 1 != quads) {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in q.iter().enumerate() {
            let v = if i >= 4 - pad { 0 } else { val(*c)? };
            n = (n << 6) | v;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // Go rejects non-zero bits in the padding's place.
        match pad {
            1 if bytes[2] != 0 => return None,
            2 if bytes[1] != 0 || bytes[2] != 0 => return None,
            _ => {}
        }
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(text: &str) -> String {
        let v: GoValue = json::parse(text.as_bytes()).unwrap();
        marshal(&v.to_json())
    }

    #[test]
    fn numbers_print_as_go_float64() {
        // Exactly what libcni 1.1.2 wrote for these inputs
        // (tests/fixtures/libcni-1.1.2/recorded/fixnet/00-ADD-fake.stdin).
        assert_eq!(
            go(
                r#"{"int": 1500, "float": 1500.0, "ratio": 1.50, "big": 1e21, "tiny": 0.0000001, "huge": 12345678901234567890, "neg": -2.5e-8}"#
            ),
            r#"{"big":1e+21,"float":1500,"huge":12345678901234567000,"int":1500,"neg":-2.5e-8,"ratio":1.5,"tiny":1e-7}"#
        );
        assert_eq!(float(1e20), "100000000000000000000");
        assert_eq!(float(-0.0), "-0");
        assert_eq!(float(1e-6), "0.000001");
        assert_eq!(float(1.5e300), "1.5e+300");
        assert_eq!(
            number(&Number::from(-9007199254740993i64)),
            "-9007199254740992"
        );
    }

    #[test]
    fn keys_sorted_by_bytes_and_html_escaped() {
        assert_eq!(
            go(r#"{"b":{"z":1,"a":[true,null]},"Name":"<x>&","a":"\u2028","dup":1,"dup":2}"#),
            r#"{"Name":"\u003cx\u003e\u0026","a":"\u2028","b":{"a":[true,null],"z":1},"dup":2}"#
        );
    }

    #[test]
    fn raw_members_are_inserted_in_key_order() {
        let base = json::parse(br#"{"type":"x","name":"old"}"#)
            .unwrap()
            .to_json();
        let s = marshal_map_with(
            base.as_object().unwrap(),
            &[("name", "\"n\""), ("prevResult", r#"{"z":1,"a":2}"#)],
        );
        assert_eq!(s, r#"{"name":"n","prevResult":{"z":1,"a":2},"type":"x"}"#);
    }

    #[test]
    fn base64_round_trips_like_go() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("{\"a\":1}\n", "eyJhIjoxfQo="),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
            assert_eq!(base64_decode(enc).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64_decode("Zm9v\r\nYg==").unwrap(), b"foob");
        for bad in ["Zg", "Zg=", "Z===", "Zh==", "Zm9=Zm9v", "Zm9v!A==", "é"] {
            assert!(base64_decode(bad).is_none(), "{bad}");
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base64_decode(&base64_encode(&all)).unwrap(), all);
    }
}
