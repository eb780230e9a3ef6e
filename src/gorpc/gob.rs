//! A small gob codec: enough of Go's `encoding/gob` for net/rpc calls whose
//! types are structs, slices, strings, byte slices and integers.
//!
//! Wire rules used here (from the gob documentation):
//! - a message is `uint(length)` then `int(type id)` then the content; a
//!   negative id announces a type definition (a `wireType` value);
//! - unsigned ints below 128 are one byte, else `-(byte count)` then the
//!   big-endian bytes; signed ints are zigzag-folded into unsigned;
//! - a struct is a list of `(uint field delta, value)` ended by delta 0;
//!   zero scalars, empty slices and nil pointers are left out, nested
//!   structs are always sent;
//! - a top-level value that is not a struct is preceded by a 0 byte.
//!
//! Type ids below 64 are Go's builtins; user types are numbered from 64 in
//! the order Go meets them (a struct before its fields, a slice after its
//! element) and each definition is sent once per stream, before first use,
//! parent before children.

use std::collections::HashMap;
use std::io::{self, Read};

pub const ID_BOOL: i64 = 1;
pub const ID_INT: i64 = 2;
pub const ID_UINT: i64 = 3;
pub const ID_FLOAT: i64 = 4;
pub const ID_BYTES: i64 = 5;
pub const ID_STRING: i64 = 6;
const ID_COMPLEX: i64 = 7;
const ID_INTERFACE: i64 = 8;
const FIRST_USER_ID: i64 = 64;
/// The largest message accepted from a peer.
const MAX_MESSAGE: u64 = 16 << 20;

/// A decoded (or to-be-encoded) gob value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Bytes(Vec<u8>),
    String(String),
    /// Named fields; a field absent here is zero (or a nil pointer).
    Struct(Vec<(String, Value)>),
    Slice(Vec<Value>),
    Map(Vec<(Value, Value)>),
    /// A nil interface value.
    Nil,
}

impl Value {
    /// A struct from `(name, value)` pairs.
    pub fn fields(pairs: Vec<(&str, Value)>) -> Value {
        Value::Struct(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(f) => f.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn str_field(&self, name: &str) -> &str {
        match self.field(name) {
            Some(Value::String(s)) => s,
            _ => "",
        }
    }

    pub fn bytes_field(&self, name: &str) -> &[u8] {
        match self.field(name) {
            Some(Value::Bytes(b)) => b,
            _ => &[],
        }
    }

    pub fn int_field(&self, name: &str) -> Option<i64> {
        match self.field(name) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn slice_field(&self, name: &str) -> &[Value] {
        match self.field(name) {
            Some(Value::Slice(s)) => s,
            _ => &[],
        }
    }
}

/// A Go type as the encoder describes it.
#[derive(Debug)]
pub enum Ty {
    Int,
    Uint,
    Bytes,
    String,
    Struct {
        name: &'static str,
        fields: &'static [(&'static str, &'static Ty)],
    },
    Slice {
        name: &'static str,
        elem: &'static Ty,
    },
}

impl Ty {
    /// Identity of a user type: the address of its `static` (names may be
    /// empty, as Go leaves them for types reached through pointers).
    fn key(&'static self) -> usize {
        self as *const Ty as usize
    }
}

// ---------------------------------------------------------------- encoding

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

// ---------------------------------------------------------------- decoding

#[derive(Debug, Clone)]
enum Wire {
    Struct(Vec<(String, i64)>),
    Slice(i64),
    Array(i64),
    Map(i64, i64),
    /// GobEncoder / BinaryMarshaler / TextMarshaler: opaque bytes.
    Opaque,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("gob: {}", msg.into()))
}

/// A cursor over one message's bytes.
struct Buf<'a>(&'a [u8]);

impl Buf<'_> {
    fn byte(&mut self) -> io::Result<u8> {
        let (&b, rest) = self.0.split_first().ok_or_else(|| bad("short message"))?;
        self.0 = rest;
        Ok(b)
    }

    fn uint(&mut self) -> io::Result<u64> {
        let b = self.byte()?;
        if b < 128 {
            return Ok(b as u64);
        }
        let n = 256 - b as usize;
        if n > 8 {
            return Err(bad("integer too long"));
        }
        let mut x = 0u64;
        for _ in 0..n {
            x = (x << 8) | self.byte()? as u64;
        }
        Ok(x)
    }

    fn int(&mut self) -> io::Result<i64> {
        let u = self.uint()?;
        Ok(if u & 1 == 1 {
            !((u >> 1) as i64)
        } else {
            (u >> 1) as i64
        })
    }

    fn bytes(&mut self) -> io::Result<Vec<u8>> {
        let n = self.uint()? as usize;
        if n > self.0.len() {
            return Err(bad("length beyond message"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a.to_vec())
    }

    fn string(&mut self) -> io::Result<String> {
        String::from_utf8(self.bytes()?).map_err(|_| bad("string not UTF-8"))
    }

    fn count(&mut self) -> io::Result<usize> {
        let n = self.uint()?;
        // Every element takes at least one byte.
        if n > self.0.len() as u64 {
            return Err(bad("count beyond message"));
        }
        Ok(n as usize)
    }

    /// Walk a struct's field deltas, calling `f` with each field index.
    fn each_field(
        &mut self,
        mut f: impl FnMut(&mut Self, i64) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut field = -1i64;
        loop {
            let delta = self.uint()?;
            if delta == 0 {
                return Ok(());
            }
            field = field.saturating_add(delta.min(1 << 20) as i64);
            f(self, field)?;
        }
    }

    /// `CommonType{Name, Id}`: the id.
    fn common(&mut self) -> io::Result<i64> {
        let mut id = 0;
        self.each_field(|b, i| {
            match i {
                0 => drop(b.string()?),
                1 => id = b.int()?,
                _ => return Err(bad("unknown CommonType field")),
            }
            Ok(())
        })?;
        Ok(id)
    }
}

/// One gob stream's decoder: keeps the type definitions the peer sent.
pub struct Decoder<R> {
    r: R,
    types: HashMap<i64, Wire>,
}

impl<R: Read> Decoder<R> {
    pub fn new(r: R) -> Decoder<R> {
        Decoder {
            r,
            types: HashMap::new(),
        }
    }

    fn read_uint(&mut self) -> io::Result<u64> {
        let mut b = [0u8; 1];
        self.r.read_exact(&mut b)?;
        if b[0] < 128 {
            return Ok(b[0] as u64);
        }
        let n = 256 - b[0] as usize;
        if n > 8 {
            return Err(bad("length too long"));
        }
        let mut buf = [0u8; 8];
        self.r.read_exact(&mut buf[8 - n..])?;
        Ok(u64::from_be_bytes(buf))
    }

    /// The next value, reading any type definitions before it. A clean end
    /// of stream before a message is `UnexpectedEof`.
    pub fn decode(&mut self) -> io::Result<Value> {
        loop {
            let len = self.read_uint()?;
            if len > MAX_MESSAGE {
                return Err(bad("message too large"));
            }
            let mut msg = vec![0u8; len as usize];
            self.r.read_exact(&mut msg)?;
            let mut b = Buf(&msg);
            let id = b.int()?;
            if id < 0 {
                let wire = read_wire(&mut b)?;
                self.types.insert(-id, wire);
                continue;
            }
            if !matches!(self.types.get(&id), Some(Wire::Struct(_))) && b.byte()? != 0 {
                return Err(bad("singleton value without its 0 byte"));
            }
            return self.value(&mut b, id, 0);
        }
    }

    fn value(&self, b: &mut Buf, id: i64, depth: u32) -> io::Result<Value> {
        if depth > 64 {
            return Err(bad("values nested too deep"));
        }
        Ok(match id {
            ID_BOOL => Value::Bool(b.uint()? != 0),
            ID_INT => Value::Int(b.int()?),
            ID_UINT => Value::Uint(b.uint()?),
            ID_FLOAT => Value::Float(f64::from_bits(b.uint()?.swap_bytes())),
            ID_BYTES => Value::Bytes(b.bytes()?),
            ID_STRING => Value::String(b.string()?),
            ID_COMPLEX => {
                b.uint()?;
                b.uint()?;
                Value::Nil
            }
            ID_INTERFACE => {
                if !b.bytes()?.is_empty() {
                    return Err(bad("interface values are not supported"));
                }
                Value::Nil
            }
            _ => match self.types.get(&id) {
                Some(Wire::Struct(fields)) => {
                    let mut out = Vec::new();
                    b.each_field(|b, i| {
                        let (name, fid) = fields
                            .get(i as usize)
                            .ok_or_else(|| bad("field number out of range"))?;
                        out.push((name.clone(), self.value(b, *fid, depth + 1)?));
                        Ok(())
                    })?;
                    Value::Struct(out)
                }
                Some(Wire::Slice(elem)) | Some(Wire::Array(elem)) => {
                    let n = b.count()?;
                    let mut out = Vec::with_capacity(n);
                    for _ in 0..n {
                        out.push(self.value(b, *elem, depth + 1)?);
                    }
                    Value::Slice(out)
                }
                Some(Wire::Map(k, v)) => {
                    let n = b.count()?;
                    let mut out = Vec::with_capacity(n);
                    for _ in 0..n {
                        let key = self.value(b, *k, depth + 1)?;
                        out.push((key, self.value(b, *v, depth + 1)?));
                    }
                    Value::Map(out)
                }
                Some(Wire::Opaque) => Value::Bytes(b.bytes()?),
                None => return Err(bad(format!("unknown type id {id}"))),
            },
        })
    }
}

/// A `wireType` value: which kind of type and its element/field ids.
fn read_wire(b: &mut Buf) -> io::Result<Wire> {
    let mut wire = None;
    b.each_field(|b, which| {
        wire = Some(match which {
            0 => {
                let (mut elem, mut _len) = (0, 0);
                b.each_field(|b, i| {
                    match i {
                        0 => drop(b.common()?),
                        1 => elem = b.int()?,
                        2 => _len = b.int()?,
                        _ => return Err(bad("unknown arrayType field")),
                    }
                    Ok(())
                })?;
                Wire::Array(elem)
            }
            1 => {
                let mut elem = 0;
                b.each_field(|b, i| {
                    match i {
                        0 => drop(b.common()?),
                        1 => elem = b.int()?,
                        _ => return Err(bad("unknown sliceType field")),
                    }
                    Ok(())
                })?;
                Wire::Slice(elem)
            }
            2 => {
                let mut fields = Vec::new();
                b.each_field(|b, i| {
                    match i {
                        0 => drop(b.common()?),
                        1 => {
                            for _ in 0..b.count()? {
                                let (mut name, mut id) = (String::new(), 0);
                                b.each_field(|b, j| {
                                    match j {
                                        0 => name = b.string()?,
                                        1 => id = b.int()?,
                                        _ => return Err(bad("unknown fieldType field")),
                                    }
                                    Ok(())
                                })?;
                                fields.push((name, id));
                            }
                        }
                        _ => return Err(bad("unknown structType field")),
                    }
                    Ok(())
                })?;
                Wire::Struct(fields)
            }
            3 => {
                let (mut k, mut v) = (0, 0);
                b.each_field(|b, i| {
                    match i {
                        0 => drop(b.common()?),
                        1 => k = b.int()?,
                        2 => v = b.int()?,
                        _ => return Err(bad("unknown mapType field")),
                    }
                    Ok(())
                })?;
                Wire::Map(k, v)
            }
            4..=6 => {
                b.each_field(|b, i| match i {
                    0 => b.common().map(drop),
                    _ => Err(bad("unknown gobEncoderType field")),
                })?;
                Wire::Opaque
            }
            _ => return Err(bad("unknown wireType")),
        });
        Ok(())
    })?;
    wire.ok_or_else(|| bad("empty type definition"))
}
