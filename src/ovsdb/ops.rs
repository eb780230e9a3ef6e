//! OVSDB's JSON forms (RFC 7047 section 5.1) and operations (section 5.2):
//! builders that make the exact JSON, and readers for what comes back.

use serde_json::{json, Map, Value};

/// `["uuid", u]`: a reference to an existing row.
pub fn uuid(u: &str) -> Value {
    json!(["uuid", u])
}

/// `["named-uuid", n]`: a reference to a row inserted in the same
/// transaction under `uuid-name` n.
pub fn named(n: &str) -> Value {
    json!(["named-uuid", n])
}

/// `["set", [...]]`.
pub fn set(items: Vec<Value>) -> Value {
    json!(["set", items])
}

/// `["map", [[k, v], ...]]` with string keys and values.
pub fn map<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    let pairs: Vec<Value> = pairs.into_iter().map(|(k, v)| json!([k, v])).collect();
    json!(["map", pairs])
}

/// A condition `[column, function, value]`.
pub fn cond(column: &str, function: &str, value: Value) -> Value {
    json!([column, function, value])
}

pub fn insert(table: &str, row: Value, uuid_name: Option<&str>) -> Value {
    let mut op = json!({"op": "insert", "table": table, "row": row});
    if let Some(n) = uuid_name {
        op["uuid-name"] = json!(n);
    }
    op
}

pub fn select(table: &str, conds: Vec<Value>, columns: &[&str]) -> Value {
    json!({"op": "select", "table": table, "where": conds, "columns": columns})
}

/// `mutations` are `[column, mutator, value]`.
pub fn mutate(table: &str, conds: Vec<Value>, mutations: Vec<Value>) -> Value {
    json!({"op": "mutate", "table": table, "where": conds, "mutations": mutations})
}

/// Fails the transaction at once (timeout 0) unless the rows matching
/// `conds` are exactly `rows` (for `until` "==") in `columns`.
pub fn wait_now(table: &str, conds: Vec<Value>, columns: &[&str], rows: Vec<Value>) -> Value {
    json!({"op": "wait", "timeout": 0, "table": table, "where": conds,
           "columns": columns, "until": "==", "rows": rows})
}

/// The rows of a select result.
pub fn rows(result: &Value) -> &[Value] {
    result
        .get("rows")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The uuid string of `["uuid", u]`.
pub fn uuid_of(v: &Value) -> Option<&str> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, Value::String(u)]) if tag == "uuid" => Some(u),
        _ => None,
    }
}

/// The members of a set column: a bare atom is a set of one.
pub fn set_items(v: &Value) -> Vec<&Value> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, Value::Array(items)]) if tag == "set" => items.iter().collect(),
        _ if v.is_null() => Vec::new(),
        _ => vec![v],
    }
}

/// A map column as string pairs (non-string entries are skipped).
pub fn map_items(v: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some([tag, Value::Array(pairs)]) = v.as_array().map(Vec::as_slice) {
        if tag == "map" {
            for p in pairs {
                if let Some([Value::String(k), val]) = p.as_array().map(Vec::as_slice) {
                    out.insert(k.clone(), val.clone());
                }
            }
        }
    }
    out
}

/// An optional scalar column (a set of zero or one).
pub fn optional(v: &Value) -> Option<&Value> {
    set_items(v).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_the_rfc_ones() {
        assert_eq!(uuid("u1").to_string(), r#"["uuid","u1"]"#);
        assert_eq!(named("p").to_string(), r#"["named-uuid","p"]"#);
        assert_eq!(
            set(vec![json!(1), json!(2)]).to_string(),
            r#"["set",[1,2]]"#
        );
        assert_eq!(
            map([("owner", "cnibox")]).to_string(),
            r#"["map",[["owner","cnibox"]]]"#
        );
        assert_eq!(
            wait_now(
                "Bridge",
                vec![cond("name", "==", json!("br0"))],
                &["name"],
                vec![json!({"name": "br0"})]
            )
            .to_string(),
            r#"{"columns":["name"],"op":"wait","rows":[{"name":"br0"}],"table":"Bridge","timeout":0,"until":"==","where":[["name","==","br0"]]}"#
        );
    }

    #[test]
    fn columns_are_read_in_every_form() {
        assert_eq!(uuid_of(&json!(["uuid", "a"])), Some("a"));
        assert_eq!(uuid_of(&json!(["named-uuid", "a"])), None);
        assert_eq!(set_items(&json!(["set", []])).len(), 0);
        assert_eq!(set_items(&json!(5)), vec![&json!(5)]);
        assert_eq!(optional(&json!(["set", []])), None);
        assert_eq!(optional(&json!("boom")), Some(&json!("boom")));
        let m = map_items(&json!(["map", [["a", "1"], ["b", "2"]]]));
        assert_eq!(m["b"], "2");
        assert!(map_items(&json!(["set", []])).is_empty());
        assert_eq!(rows(&json!({"rows": [{"a": 1}]})).len(), 1);
        assert_eq!(rows(&json!({})).len(), 0);
    }
}
