//! The sample fetches and converters sluiced knows, with their arguments. (Stub: the full table
//! lands with the expression parser.)

use crate::config::registry::DocTable;

pub fn doc_tables() -> Vec<DocTable> {
    Vec::new()
}
