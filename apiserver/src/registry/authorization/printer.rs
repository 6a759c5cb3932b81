//! Reviews are answered, never listed: their tables only name them.

use jiff::Timestamp;
use serde_json::Value;

use crate::printers::format::*;
use crate::printers::*;

pub const COLUMNS: &[Col] = &[NAME];

pub fn cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    vec![name(obj)]
}

pub static PRINTER: Printer = printer(COLUMNS, cells);
