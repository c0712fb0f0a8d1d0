//! Typed access to a plan node's parameters (the checker has already
//! validated them; a failure here means a plan and code out of step).

use std::collections::BTreeMap;

use crate::exec::artifacts::ExecError;
use crate::plan::{CValue, Key, Node};

fn missing(node: &Node, name: &str) -> ExecError {
    ExecError::Invalid(format!("{} node {} has no usable `{name}`", node.kind, node.key.short()))
}

pub fn key(node: &Node, name: &str) -> Result<Key, ExecError> {
    match node.params.get(name) {
        Some(CValue::Key(k)) => Ok(*k),
        _ => Err(missing(node, name)),
    }
}

pub fn opt_key(node: &Node, name: &str) -> Option<Key> {
    match node.params.get(name) {
        Some(CValue::Key(k)) => Some(*k),
        _ => None,
    }
}

pub fn int(node: &Node, name: &str) -> Result<i64, ExecError> {
    match node.params.get(name) {
        Some(CValue::Int(v)) => Ok(*v),
        _ => Err(missing(node, name)),
    }
}

pub fn float(node: &Node, name: &str) -> Result<f64, ExecError> {
    match node.params.get(name) {
        Some(CValue::Float(v)) => Ok(*v),
        Some(CValue::Int(v)) => Ok(*v as f64),
        _ => Err(missing(node, name)),
    }
}

pub fn string(node: &Node, name: &str) -> Result<String, ExecError> {
    match node.params.get(name) {
        Some(CValue::Str(v)) => Ok(v.clone()),
        _ => Err(missing(node, name)),
    }
}

pub fn record<'n>(node: &'n Node, name: &str) -> Result<(&'n str, &'n BTreeMap<String, CValue>), ExecError> {
    match node.params.get(name) {
        Some(CValue::Record { tag, fields }) => Ok((tag.as_str(), fields)),
        _ => Err(missing(node, name)),
    }
}

pub fn field_key(node: &Node, fields: &BTreeMap<String, CValue>, name: &str) -> Result<Key, ExecError> {
    match fields.get(name) {
        Some(CValue::Key(k)) => Ok(*k),
        _ => Err(missing(node, name)),
    }
}

pub fn field_float(node: &Node, fields: &BTreeMap<String, CValue>, name: &str) -> Result<f64, ExecError> {
    match fields.get(name) {
        Some(CValue::Float(v)) => Ok(*v),
        Some(CValue::Int(v)) => Ok(*v as f64),
        _ => Err(missing(node, name)),
    }
}
