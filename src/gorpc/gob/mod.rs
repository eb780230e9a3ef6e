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

mod decode;
mod encode;

pub use decode::Decoder;
pub use encode::Encoder;

pub const ID_BOOL: i64 = 1;
pub const ID_INT: i64 = 2;
pub const ID_UINT: i64 = 3;
pub const ID_FLOAT: i64 = 4;
pub const ID_BYTES: i64 = 5;
pub const ID_STRING: i64 = 6;
pub(crate) const ID_COMPLEX: i64 = 7;
pub(crate) const ID_INTERFACE: i64 = 8;
pub(crate) const FIRST_USER_ID: i64 = 64;
/// The largest message accepted from a peer.
pub(crate) const MAX_MESSAGE: u64 = 16 << 20;

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
    pub(crate) fn key(&'static self) -> usize {
        self as *const Ty as usize
    }
}
