//! JSON read and written the way Go's `encoding/json` does, because every
//! config a runtime hands us was written for the Go plugins.
//!
//! Reading ([`from_slice`], [`GoValue`]): object keys match struct fields
//! case-insensitively (exact match preferred), unknown keys are ignored, the
//! last duplicate wins, and `null` leaves a field at its zero value. Errors
//! carry the path of the offending field (`ipam.ranges[0][0].subnet: ...`).
//!
//! Writing ([`to_go_pretty`], [`to_go_compact`]): 4-space indentation like
//! `json.MarshalIndent(v, "", "    ")` and Go's HTML-safe escaping of `<`, `>`,
//! `&`, U+2028 and U+2029. Field order is the order of the serialized struct.

use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::Serialize;
use std::fmt;

/// A parsed JSON document that keeps every object entry in document order,
/// duplicates included, so Go's matching rules can be applied afterwards.
#[derive(Debug, Clone, PartialEq)]
pub enum GoValue {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<GoValue>),
    Object(Vec<(String, GoValue)>),
}

/// A decoding error with the path of the field it happened in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    path: Vec<String>,
    msg: String,
}

impl DecodeError {
    fn within(mut self, segment: String) -> Self {
        self.path.insert(0, segment);
        self
    }

    /// The dotted path of the field (empty at the top level).
    pub fn path(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            if !out.is_empty() && !seg.starts_with('[') {
                out.push('.');
            }
            out.push_str(seg);
        }
        out
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.msg)
        } else {
            write!(f, "{}: {}", self.path(), self.msg)
        }
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError {
            path: Vec::new(),
            msg: msg.to_string(),
        }
    }
}

/// Parse JSON text into a [`GoValue`] (syntax errors only).
pub fn parse(bytes: &[u8]) -> Result<GoValue, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// Parse JSON text and decode it into `T` with Go's rules.
pub fn from_slice<T: de::DeserializeOwned>(bytes: &[u8]) -> Result<T, FromSliceError> {
    let value = parse(bytes).map_err(FromSliceError::Syntax)?;
    T::deserialize(value).map_err(FromSliceError::Field)
}

/// Decode an already parsed value into `T` with Go's rules.
pub fn from_value<T: de::DeserializeOwned>(value: GoValue) -> Result<T, DecodeError> {
    T::deserialize(value)
}

/// Why [`from_slice`] failed: the text is not JSON (CNI code 6), or a field has
/// the wrong shape (code 7 for configs).
#[derive(Debug)]
pub enum FromSliceError {
    Syntax(serde_json::Error),
    Field(DecodeError),
}

impl fmt::Display for FromSliceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FromSliceError::Syntax(e) => write!(f, "{e}"),
            FromSliceError::Field(e) => write!(f, "{e}"),
        }
    }
}

impl GoValue {
    /// The value of a key of an object, matched like a Go struct field
    /// (case-insensitive, last one wins). `None` if absent or not an object.
    pub fn get(&self, key: &str) -> Option<&GoValue> {
        match self {
            GoValue::Object(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| k == key || fold_eq(k, key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value of a key of an object, matched exactly (a Go map key).
    pub fn get_exact(&self, key: &str) -> Option<&GoValue> {
        match self {
            GoValue::Object(entries) => {
                entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            GoValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, GoValue::Null)
    }

    /// Set a key, replacing any entries that match it like a Go struct field.
    pub fn set(&mut self, key: &str, value: GoValue) {
        if let GoValue::Object(entries) = self {
            entries.retain(|(k, _)| !(k == key || fold_eq(k, key)));
            entries.push((key.to_string(), value));
        }
    }

    /// Convert to a `serde_json::Value`. Duplicate keys collapse to the last
    /// one, as any Go reader would see them.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            GoValue::Null => serde_json::Value::Null,
            GoValue::Bool(b) => serde_json::Value::Bool(*b),
            GoValue::Number(n) => serde_json::Value::Number(n.clone()),
            GoValue::String(s) => serde_json::Value::String(s.clone()),
            GoValue::Array(a) => serde_json::Value::Array(a.iter().map(GoValue::to_json).collect()),
            GoValue::Object(o) => {
                let mut m = serde_json::Map::new();
                for (k, v) in o {
                    m.insert(k.clone(), v.to_json());
                }
                serde_json::Value::Object(m)
            }
        }
    }
}

/// Serializing keeps document order and duplicates, so a config passed on to
/// a delegate is byte-for-byte what Go would re-marshal from the same map
/// only after Go's own collapsing; callers that need Go's sorted-map output
/// use [`GoValue::to_json`] instead.
impl Serialize for GoValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            GoValue::Null => s.serialize_unit(),
            GoValue::Bool(b) => s.serialize_bool(*b),
            GoValue::Number(n) => n.serialize(s),
            GoValue::String(v) => s.serialize_str(v),
            GoValue::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            GoValue::Object(o) => {
                let mut map = s.serialize_map(Some(o.len()))?;
                for (k, v) in o {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// Go's case folding for field names: a rune matches if it is equal after
/// lower- then upper-casing (so `ſ` matches `s` and the Kelvin sign `k`).
pub fn fold_eq(a: &str, b: &str) -> bool {
    fn fold(c: char) -> impl Iterator<Item = char> {
        c.to_lowercase().flat_map(char::to_uppercase)
    }
    a.chars().flat_map(fold).eq(b.chars().flat_map(fold))
}

impl<'de> de::Deserialize<'de> for GoValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = GoValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, b: bool) -> Result<GoValue, E> {
                Ok(GoValue::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<GoValue, E> {
                Ok(GoValue::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<GoValue, E> {
                Ok(GoValue::Number(n.into()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<GoValue, E> {
                serde_json::Number::from_f64(n)
                    .map(GoValue::Number)
                    .ok_or_else(|| E::custom("number out of range"))
            }
            fn visit_str<E>(self, s: &str) -> Result<GoValue, E> {
                Ok(GoValue::String(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<GoValue, E> {
                Ok(GoValue::String(s))
            }
            fn visit_unit<E>(self) -> Result<GoValue, E> {
                Ok(GoValue::Null)
            }
            fn visit_none<E>(self) -> Result<GoValue, E> {
                Ok(GoValue::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<GoValue, D::Error> {
                de::Deserialize::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<GoValue, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = a.next_element()? {
                    out.push(v);
                }
                Ok(GoValue::Array(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<GoValue, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, GoValue>()? {
                    out.push((k, v));
                }
                Ok(GoValue::Object(out))
            }
        }
        d.deserialize_any(V)
    }
}

fn type_name(v: &GoValue) -> &'static str {
    match v {
        GoValue::Null => "null",
        GoValue::Bool(_) => "boolean",
        GoValue::Number(_) => "number",
        GoValue::String(_) => "string",
        GoValue::Array(_) => "array",
        GoValue::Object(_) => "object",
    }
}

/// Keep, for every struct field, only the last entry that maps to it; `null`
/// resets the field to "absent" (its zero value), as in Go.
fn resolve_fields(
    entries: Vec<(String, GoValue)>,
    fields: &'static [&'static str],
) -> Vec<(&'static str, GoValue)> {
    let mut out: Vec<(&'static str, GoValue)> = Vec::new();
    for (key, value) in entries {
        let field = fields
            .iter()
            .find(|f| **f == key)
            .or_else(|| fields.iter().find(|f| fold_eq(f, &key)));
        let Some(field) = field else { continue };
        out.retain(|(f, _)| f != field);
        if !value.is_null() {
            out.push((field, value));
        }
    }
    out
}

struct EntriesAccess<K> {
    entries: std::vec::IntoIter<(K, GoValue)>,
    pending: Option<(String, GoValue)>,
}

impl<'de, K: Into<String>> MapAccess<'de> for EntriesAccess<K> {
    type Error = DecodeError;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DecodeError> {
        match self.entries.next() {
            None => Ok(None),
            Some((k, v)) => {
                let k: String = k.into();
                let key = seed.deserialize(k.clone().into_deserializer())?;
                self.pending = Some((k, v));
                Ok(Some(key))
            }
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, DecodeError> {
        let (k, v) = self
            .pending
            .take()
            .ok_or_else(|| de::Error::custom("value without key"))?;
        seed.deserialize(v).map_err(|e| e.within(k))
    }
}

struct ElementsAccess {
    items: std::iter::Enumerate<std::vec::IntoIter<GoValue>>,
}

impl<'de> SeqAccess<'de> for ElementsAccess {
    type Error = DecodeError;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DecodeError> {
        match self.items.next() {
            None => Ok(None),
            Some((i, v)) => seed
                .deserialize(v)
                .map(Some)
                .map_err(|e| e.within(format!("[{i}]"))),
        }
    }
}

macro_rules! scalar {
    ($($method:ident => $zero:expr),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
            match self {
                GoValue::Null => $zero(v),
                other => other.deserialize_any(v),
            }
        }
    )*};
}

impl<'de> Deserializer<'de> for GoValue {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        match self {
            GoValue::Null => v.visit_unit(),
            GoValue::Bool(b) => v.visit_bool(b),
            GoValue::Number(n) => {
                if let Some(u) = n.as_u64() {
                    v.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    v.visit_i64(i)
                } else {
                    v.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            GoValue::String(s) => v.visit_string(s),
            GoValue::Array(a) => v.visit_seq(ElementsAccess {
                items: a.into_iter().enumerate(),
            }),
            GoValue::Object(o) => v.visit_map(EntriesAccess {
                entries: o.into_iter(),
                pending: None,
            }),
        }
    }

    scalar! {
        deserialize_bool => |v: V| v.visit_bool(false),
        deserialize_i8 => |v: V| v.visit_i64(0),
        deserialize_i16 => |v: V| v.visit_i64(0),
        deserialize_i32 => |v: V| v.visit_i64(0),
        deserialize_i64 => |v: V| v.visit_i64(0),
        deserialize_u8 => |v: V| v.visit_u64(0),
        deserialize_u16 => |v: V| v.visit_u64(0),
        deserialize_u32 => |v: V| v.visit_u64(0),
        deserialize_u64 => |v: V| v.visit_u64(0),
        deserialize_f32 => |v: V| v.visit_f64(0.0),
        deserialize_f64 => |v: V| v.visit_f64(0.0),
        deserialize_str => |v: V| v.visit_string(String::new()),
        deserialize_string => |v: V| v.visit_string(String::new()),
        deserialize_char => |v: V| v.visit_unit(),
        deserialize_bytes => |v: V| v.visit_unit(),
        deserialize_byte_buf => |v: V| v.visit_unit(),
        deserialize_unit => |v: V| v.visit_unit(),
        deserialize_identifier => |v: V| v.visit_unit(),
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        match self {
            GoValue::Null => v.visit_none(),
            other => v.visit_some(other),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DecodeError> {
        v.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DecodeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        match self {
            GoValue::Null => v.visit_seq(ElementsAccess {
                items: Vec::new().into_iter().enumerate(),
            }),
            GoValue::Array(a) => v.visit_seq(ElementsAccess {
                items: a.into_iter().enumerate(),
            }),
            other => Err(de::Error::custom(format!(
                "expected an array, got {}",
                type_name(&other)
            ))),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        v: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _n: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, DecodeError> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        match self {
            GoValue::Null => v.visit_map(EntriesAccess::<String> {
                entries: Vec::new().into_iter(),
                pending: None,
            }),
            GoValue::Object(o) => v.visit_map(EntriesAccess {
                entries: o.into_iter(),
                pending: None,
            }),
            other => Err(de::Error::custom(format!(
                "expected an object, got {}",
                type_name(&other)
            ))),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DecodeError> {
        match self {
            GoValue::Null => v.visit_map(EntriesAccess::<&'static str> {
                entries: Vec::new().into_iter(),
                pending: None,
            }),
            GoValue::Object(o) => v.visit_map(EntriesAccess {
                entries: resolve_fields(o, fields).into_iter(),
                pending: None,
            }),
            other => Err(de::Error::custom(format!(
                "expected an object, got {}",
                type_name(&other)
            ))),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DecodeError> {
        match self {
            GoValue::String(s) => v.visit_enum(s.into_deserializer()),
            other => Err(de::Error::custom(format!(
                "expected a string, got {}",
                type_name(&other)
            ))),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DecodeError> {
        v.visit_unit()
    }
}

impl<'de> IntoDeserializer<'de, DecodeError> for GoValue {
    type Deserializer = GoValue;
    fn into_deserializer(self) -> GoValue {
        self
    }
}

/// A serde_json formatter that escapes like Go: `<`, `>`, `&`, U+2028 and
/// U+2029 become `\u003c`, `\u003e`, `\u0026`, `\u2028`, `\u2029`.
struct GoEscaping<F>(F);

macro_rules! delegate {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {$(
        fn $method<W: ?Sized + std::io::Write>(&mut self, w: &mut W $(, $arg: $ty)*) -> std::io::Result<()> {
            self.0.$method(w $(, $arg)*)
        }
    )*};
}

impl<F: serde_json::ser::Formatter> serde_json::ser::Formatter for GoEscaping<F> {
    delegate! {
        begin_array(),
        end_array(),
        begin_array_value(first: bool),
        end_array_value(),
        begin_object(),
        end_object(),
        begin_object_key(first: bool),
        end_object_key(),
        begin_object_value(),
        end_object_value(),
    }

    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            w.write_all(&fragment.as_bytes()[start..i])?;
            w.write_all(esc.as_bytes())?;
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

fn write_with<T: Serialize + ?Sized, F: serde_json::ser::Formatter>(v: &T, f: F) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoEscaping(f));
    // Serializing our own plain data types into memory cannot fail.
    if v.serialize(&mut ser).is_err() {
        return String::new();
    }
    String::from_utf8(out).unwrap_or_default()
}

/// `json.MarshalIndent(v, "", "    ")`.
pub fn to_go_pretty<T: Serialize + ?Sized>(v: &T) -> String {
    write_with(v, serde_json::ser::PrettyFormatter::with_indent(b"    "))
}

/// `json.Marshal(v)`.
pub fn to_go_compact<T: Serialize + ?Sized>(v: &T) -> String {
    write_with(v, serde_json::ser::CompactFormatter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, Default, PartialEq)]
    #[serde(default)]
    struct Conf {
        #[serde(rename = "ipMasq")]
        ip_masq: bool,
        mtu: u32,
        name: String,
        inner: Option<Inner>,
        list: Vec<String>,
    }

    #[derive(Deserialize, Debug, Default, PartialEq)]
    #[serde(default)]
    struct Inner {
        subnet: String,
    }

    #[test]
    fn keys_match_case_insensitively_and_last_duplicate_wins() {
        let c: Conf = from_slice(
            br#"{"IPMASQ":false,"ipmasq":true,"MTU":1400,"mtu":1500,"Name":"a","NAME":"b"}"#,
        )
        .unwrap();
        assert!(c.ip_masq);
        assert_eq!(c.mtu, 1500);
        assert_eq!(c.name, "b");
    }

    #[test]
    fn unknown_keys_are_ignored_and_null_is_zero() {
        let c: Conf =
            from_slice(br#"{"whatever":{"x":[1,2]},"mtu":null,"inner":null,"list":null}"#).unwrap();
        assert_eq!(c, Conf::default());
    }

    #[test]
    fn go_folds_long_s_and_kelvin() {
        assert!(fold_eq("ipMaſq", "ipmasq"));
        assert!(fold_eq("\u{212a}ey", "key"));
        assert!(!fold_eq("ipMasqX", "ipmasq"));
    }

    #[test]
    fn errors_name_the_field_path() {
        let e = from_slice::<Conf>(br#"{"inner":{"subnet":5}}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("inner.subnet: invalid type: integer"),
            "{e}"
        );
        let e = from_slice::<Conf>(br#"{"list":["a",3]}"#).unwrap_err();
        assert!(e.to_string().starts_with("list[1]: invalid type"), "{e}");
        let e = from_slice::<Conf>(br#"{"mtu":1.5}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("mtu: invalid type: floating point"),
            "{e}"
        );
        let e = from_slice::<Conf>(br#"{"mtu":99999999999}"#).unwrap_err();
        assert!(e.to_string().starts_with("mtu: invalid value"), "{e}");
        assert!(matches!(
            from_slice::<Conf>(b"{"),
            Err(FromSliceError::Syntax(_))
        ));
        assert!(matches!(
            from_slice::<Conf>(b"{} x"),
            Err(FromSliceError::Syntax(_))
        ));
    }

    #[test]
    fn get_uses_struct_field_matching() {
        let v = parse(br#"{"Type":"a","type":"b","TYPE":"c"}"#).unwrap();
        assert_eq!(v.get("type").and_then(GoValue::as_str), Some("c"));
        assert_eq!(v.get_exact("type").and_then(GoValue::as_str), Some("b"));
    }

    #[test]
    fn writes_like_go_marshal_indent_with_html_escaping() {
        #[derive(Serialize)]
        struct S {
            a: &'static str,
            b: Vec<u32>,
            c: Vec<u32>,
        }
        let s = to_go_pretty(&S {
            a: "<x>&\u{2028}",
            b: vec![],
            c: vec![1],
        });
        assert_eq!(s, "{\n    \"a\": \"\\u003cx\\u003e\\u0026\\u2028\",\n    \"b\": [],\n    \"c\": [\n        1\n    ]\n}");
        assert_eq!(
            to_go_compact(&S {
                a: "&",
                b: vec![],
                c: vec![]
            }),
            r#"{"a":"\u0026","b":[],"c":[]}"#
        );
    }

    #[test]
    fn deep_nesting_is_a_syntax_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
