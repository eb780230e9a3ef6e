//! gob decoding: type definitions kept per stream, values as `Value`.

use super::{
    Value, ID_BOOL, ID_BYTES, ID_COMPLEX, ID_FLOAT, ID_INT, ID_INTERFACE, ID_STRING, ID_UINT,
    MAX_MESSAGE,
};
use std::collections::HashMap;
use std::io::{self, Read};

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
