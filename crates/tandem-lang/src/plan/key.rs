//! Node keys: blake3 over a canonical, tagged serialization.
//!
//! The serialization is self-delimiting (every value starts with a tag byte
//! and every string and list with its length) so that no two different
//! parameter sets can produce the same byte string. Records are written with
//! their fields sorted by name, so argument order never matters. Floats are
//! written as their IEEE bits after the checker has turned every spelling of a
//! number into the same f64; -0.0 is written as 0.0.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A 32-byte blake3 content key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 32]);

impl Key {
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The first 10 hex digits: what people read and type.
    pub fn short(&self) -> String {
        self.hex()[..10].to_string()
    }

    pub fn from_hex(s: &str) -> Option<Key> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let h = std::str::from_utf8(chunk).ok()?;
            out[i] = u8::from_str_radix(h, 16).ok()?;
        }
        Some(Key(out))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.short())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        let s = String::deserialize(d)?;
        Key::from_hex(&s).ok_or_else(|| serde::de::Error::custom("a key is 64 hex digits"))
    }
}

/// A parameter value as it enters a key. It also travels as JSON (a node
/// sent to a Slurm job); floats go as their IEEE bits so the key recomputed
/// on the other side is the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CValue {
    Int(i64),
    Float(#[serde(with = "f64_bits")] f64),
    Str(String),
    Bool(bool),
    List(Vec<CValue>),
    /// A structured value (a loss, a sampler) tagged by its constructor.
    Record {
        tag: String,
        fields: BTreeMap<String, CValue>,
    },
    /// Another node's key: an input.
    Key(Key),
}

impl CValue {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            CValue::Int(i) => {
                out.push(b'I');
                out.extend_from_slice(&i.to_le_bytes());
            }
            CValue::Float(f) => {
                out.push(b'F');
                let f = if *f == 0.0 { 0.0f64 } else { *f };
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            CValue::Str(s) => write_str(out, s),
            CValue::Bool(b) => {
                out.push(b'B');
                out.push(u8::from(*b));
            }
            CValue::List(items) => {
                out.push(b'L');
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for i in items {
                    i.write(out);
                }
            }
            CValue::Record { tag, fields } => {
                out.push(b'R');
                write_str(out, tag);
                write_fields(out, fields);
            }
            CValue::Key(k) => {
                out.push(b'K');
                out.extend_from_slice(&k.0);
            }
        }
    }

    /// Every key inside this value, with the path that leads to it.
    pub fn keys(&self, path: &str, out: &mut Vec<(String, Key)>) {
        match self {
            CValue::Key(k) => out.push((path.to_string(), *k)),
            CValue::List(items) => {
                for (i, v) in items.iter().enumerate() {
                    v.keys(&format!("{path}[{i}]"), out);
                }
            }
            CValue::Record { fields, .. } => {
                for (n, v) in fields {
                    v.keys(&format!("{path}.{n}"), out);
                }
            }
            _ => {}
        }
    }

    /// JSON for manifests and `plan --json`; keys become their hex strings.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            CValue::Int(i) => J::from(*i),
            CValue::Float(f) => serde_json::Number::from_f64(*f).map(J::Number).unwrap_or(J::Null),
            CValue::Str(s) => J::from(s.clone()),
            CValue::Bool(b) => J::from(*b),
            CValue::List(items) => J::Array(items.iter().map(CValue::to_json).collect()),
            CValue::Record { tag, fields } => {
                let mut m = serde_json::Map::new();
                m.insert("$".into(), J::from(tag.clone()));
                for (k, v) in fields {
                    m.insert(k.clone(), v.to_json());
                }
                J::Object(m)
            }
            CValue::Key(k) => J::from(k.hex()),
        }
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'S');
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn write_fields(out: &mut Vec<u8>, fields: &BTreeMap<String, CValue>) {
    out.extend_from_slice(&(fields.len() as u64).to_le_bytes());
    for (k, v) in fields {
        write_str(out, k);
        v.write(out);
    }
}

mod f64_bits {
    pub fn serialize<S: serde::Serializer>(f: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(f.to_bits())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(f64::from_bits)
    }
}

/// Domain separation: a key of this scheme can never equal one of another.
const DOMAIN: &str = "tandem node key v1";

/// The key of a node: its kind, its implementation version and its
/// normalized parameters (input keys included).
pub fn node_key(kind: &str, version: u32, params: &BTreeMap<String, CValue>) -> Key {
    let mut buf = Vec::with_capacity(256);
    write_str(&mut buf, DOMAIN);
    write_str(&mut buf, kind);
    buf.extend_from_slice(&version.to_le_bytes());
    write_fields(&mut buf, params);
    Key(*blake3::hash(&buf).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: &[(&str, CValue)]) -> BTreeMap<String, CValue> {
        v.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn field_order_does_not_matter_but_values_do() {
        let a = params(&[("lr", CValue::Float(1e-5)), ("steps", CValue::Int(4000))]);
        let mut b = BTreeMap::new();
        b.insert("steps".to_string(), CValue::Int(4000));
        b.insert("lr".to_string(), CValue::Float(1e-5));
        assert_eq!(node_key("k", 1, &a), node_key("k", 1, &b));
        b.insert("lr".to_string(), CValue::Float(3e-5));
        assert_ne!(node_key("k", 1, &a), node_key("k", 1, &b));
        assert_ne!(node_key("k", 1, &a), node_key("k", 2, &a), "the version enters the key");
        assert_ne!(node_key("k", 1, &a), node_key("j", 1, &a), "the kind enters the key");
    }

    #[test]
    fn serialization_is_unambiguous() {
        // ["ab"] vs ["a","b"] and Int(1) vs Float(1.0) must differ.
        let a = params(&[("x", CValue::List(vec![CValue::Str("ab".into())]))]);
        let b = params(&[("x", CValue::List(vec![CValue::Str("a".into()), CValue::Str("b".into())]))]);
        assert_ne!(node_key("k", 1, &a), node_key("k", 1, &b));
        let c = params(&[("x", CValue::Int(1))]);
        let d = params(&[("x", CValue::Float(1.0))]);
        assert_ne!(node_key("k", 1, &c), node_key("k", 1, &d));
        let e = params(&[("x", CValue::Float(0.0))]);
        let f = params(&[("x", CValue::Float(-0.0))]);
        assert_eq!(node_key("k", 1, &e), node_key("k", 1, &f));
    }

    #[test]
    fn hex_round_trip() {
        let k = node_key("k", 1, &BTreeMap::new());
        assert_eq!(Key::from_hex(&k.hex()), Some(k));
        assert_eq!(Key::from_hex("zz"), None);
    }
}
