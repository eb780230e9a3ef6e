//! gob encoding: type definitions (once per stream) and values.

use super::{Ty, Value, FIRST_USER_ID, ID_BYTES, ID_INT, ID_STRING, ID_UINT};

fn put_uint(out: &mut Vec<u8>, x: u64) {
    if x < 128 {
        out.push(x as u8);
        return;
    }
    let bytes = x.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    out.push((256 - (8 - skip)) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

fn put_int(out: &mut Vec<u8>, i: i64) {
    let u = if i < 0 {
        ((!i as u64) << 1) | 1
    } else {
        (i as u64) << 1
    };
    put_uint(out, u);
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_uint(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// One gob stream's encoder: remembers which type ids it assigned and sent.
#[derive(Default)]
pub struct Encoder {
    ids: Vec<(usize, i64)>,
    sent: Vec<i64>,
    next: i64,
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder {
            next: FIRST_USER_ID,
            ..Default::default()
        }
    }

    fn builtin(ty: &Ty) -> Option<i64> {
        Some(match ty {
            Ty::Int => ID_INT,
            Ty::Uint => ID_UINT,
            Ty::Bytes => ID_BYTES,
            Ty::String => ID_STRING,
            _ => return None,
        })
    }

    /// The id of `ty`, assigning ids (Go's order) to it and what it uses.
    pub fn reserve(&mut self, ty: &'static Ty) -> i64 {
        if let Some(id) = Self::builtin(ty) {
            return id;
        }
        let key = ty.key();
        if let Some((_, id)) = self.ids.iter().find(|(k, _)| *k == key) {
            return *id;
        }
        match ty {
            Ty::Struct { fields, .. } => {
                let id = self.take_id(key);
                for (_, f) in fields.iter() {
                    self.reserve(f);
                }
                id
            }
            Ty::Slice { elem, .. } => {
                self.reserve(elem);
                self.take_id(key)
            }
            _ => unreachable!("builtins returned above"),
        }
    }

    fn take_id(&mut self, key: usize) -> i64 {
        let id = self.next;
        self.next += 1;
        self.ids.push((key, id));
        id
    }

    /// Send the definition of `ty` and of the types it uses, unless sent.
    fn send_type(&mut self, out: &mut Vec<u8>, ty: &'static Ty) {
        let id = self.reserve(ty);
        if id < FIRST_USER_ID || self.sent.contains(&id) {
            return;
        }
        self.sent.push(id);
        let mut body = Vec::new();
        put_int(&mut body, -id);
        match ty {
            Ty::Struct { name, fields } => {
                body.push(3); // wireType.StructT
                common(&mut body, name, id);
                if !fields.is_empty() {
                    body.push(1); // structType.Field
                    put_uint(&mut body, fields.len() as u64);
                    for (fname, fty) in fields.iter() {
                        let fid = self.reserve(fty);
                        body.push(1);
                        put_str(&mut body, fname.as_bytes());
                        body.push(1);
                        put_int(&mut body, fid);
                        body.push(0);
                    }
                }
                body.push(0); // end structType
            }
            Ty::Slice { name, elem } => {
                body.push(2); // wireType.SliceT
                common(&mut body, name, id);
                let eid = self.reserve(elem);
                body.push(1);
                put_int(&mut body, eid);
                body.push(0); // end sliceType
            }
            _ => {}
        }
        body.push(0); // end wireType
        put_uint(out, body.len() as u64);
        out.extend_from_slice(&body);
        match ty {
            Ty::Struct { fields, .. } => {
                for (_, f) in fields.iter() {
                    self.send_type(out, f);
                }
            }
            Ty::Slice { elem, .. } => self.send_type(out, elem),
            _ => {}
        }
    }

    /// Append the messages carrying `value` of type `ty` (definitions first).
    pub fn encode(&mut self, out: &mut Vec<u8>, ty: &'static Ty, value: &Value) {
        self.send_type(out, ty);
        let mut body = Vec::new();
        put_int(&mut body, self.reserve(ty));
        if !matches!(ty, Ty::Struct { .. }) {
            body.push(0);
        }
        encode_value(&mut body, ty, value);
        put_uint(out, body.len() as u64);
        out.extend_from_slice(&body);
    }
}

/// `CommonType{Name, Id}` as a first field of a type definition.
fn common(body: &mut Vec<u8>, name: &str, id: i64) {
    body.push(1);
    if name.is_empty() {
        body.push(2);
    } else {
        body.push(1);
        put_str(body, name.as_bytes());
        body.push(1);
    }
    put_int(body, id);
    body.push(0);
}

fn is_zero(ty: &Ty, v: &Value) -> bool {
    match (ty, v) {
        (Ty::Struct { .. }, Value::Struct(_)) => false,
        (_, Value::Bool(b)) => !b,
        (_, Value::Int(i)) => *i == 0,
        (_, Value::Uint(u)) => *u == 0,
        (_, Value::Bytes(b)) => b.is_empty(),
        (_, Value::String(s)) => s.is_empty(),
        (_, Value::Slice(s)) => s.is_empty(),
        _ => true,
    }
}

fn encode_value(out: &mut Vec<u8>, ty: &Ty, v: &Value) {
    match (ty, v) {
        (Ty::Int, Value::Int(i)) => put_int(out, *i),
        (Ty::Uint, Value::Uint(u)) => put_uint(out, *u),
        (Ty::Bytes, Value::Bytes(b)) => put_str(out, b),
        (Ty::String, Value::String(s)) => put_str(out, s.as_bytes()),
        (Ty::Slice { elem, .. }, Value::Slice(items)) => {
            put_uint(out, items.len() as u64);
            for item in items {
                encode_value(out, elem, item);
            }
        }
        (Ty::Struct { fields, .. }, v) => {
            let mut last = -1i64;
            for (i, (name, fty)) in fields.iter().enumerate() {
                let Some(fv) = v.field(name) else { continue };
                if is_zero(fty, fv) {
                    continue;
                }
                put_uint(out, (i as i64 - last) as u64);
                last = i as i64;
                encode_value(out, fty, fv);
            }
            out.push(0);
        }
        // A value of the wrong shape encodes as the type's zero value.
        (Ty::Int | Ty::Uint, _) => out.push(0),
        (Ty::Bytes | Ty::String | Ty::Slice { .. }, _) => out.push(0),
    }
}
