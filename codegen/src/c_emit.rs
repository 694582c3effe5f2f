//! The C emitter (placeholder, filled in below).
use crate::ir::Ir;
/// Emits a C header.
pub fn c(_ir: &Ir, _path: &str) -> String {
    String::new()
}
