//! Configuration of the workers: `nbthread`, `cpu-map`, `tune.*`.

use crate::config::registry::GlobalKeyword;

#[derive(Clone, Debug, Default)]
pub struct GlobalRuntime {}

pub fn global_keywords() -> Vec<GlobalKeyword> {
    Vec::new()
}
