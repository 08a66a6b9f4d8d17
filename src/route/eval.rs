//! Evaluating conditions and sample expressions against a stream. (Interface stub: the evaluator
//! lands next.) Conditions are compiled once per routing table from the configuration's
//! `Condition`s and the proxy's declared ACLs; evaluation reads the stream through [`StreamCtx`].

use std::net::{IpAddr, SocketAddr};

use crate::balance::BackendState;
use crate::config::expr::{Condition, SampleExpr};
use crate::config::model::AclDecl;

/// A sample value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sample {
    Bool(bool),
    Int(i64),
    Ip(IpAddr),
    Str(String),
    Bin(Vec<u8>),
}

/// The outcome of a condition. `Miss` means the answer needs data that has not arrived yet (content
/// inspection before `inspect-delay` expires); once the stream says its data is final, a miss is
/// a no-match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tri {
    Yes,
    No,
    Miss,
}

/// What the evaluator may ask of a stream.
pub trait StreamCtx {
    /// The client's address (after PROXY protocol, the original client's).
    fn src(&self) -> Option<SocketAddr>;
    /// The address the client connected to.
    fn dst(&self) -> Option<SocketAddr>;
    fn frontend_name(&self) -> &str;
    fn frontend_id(&self) -> u32;
    /// A backend by name, for `nbsrv(be)`, `be_conn(be)`, `connslots(be)`.
    fn backend(&self, name: &str) -> Option<&BackendState>;
    /// The backend chosen so far, if any (fetches without an argument use it).
    fn current_backend(&self) -> Option<&BackendState>;
    /// The bytes the client sent so far, not yet forwarded (content inspection).
    fn req_buffer(&self) -> &[u8];
    /// True when no more request data will be waited for: a miss is then a no-match.
    fn req_final(&self) -> bool;
}

/// A condition ready to evaluate.
#[derive(Debug)]
pub struct CompiledCond {
    cond: Condition,
}

impl CompiledCond {
    /// Compiles `cond`, resolving named ACLs against `acls` (the proxy's declarations).
    pub fn compile(cond: &Condition, acls: &[AclDecl]) -> Result<CompiledCond, String> {
        let _ = acls;
        Ok(CompiledCond { cond: cond.clone() })
    }

    pub fn eval(&self, ctx: &dyn StreamCtx) -> Tri {
        let _ = (ctx, &self.cond);
        Tri::No
    }
}

/// A sample expression ready to evaluate.
#[derive(Debug)]
pub struct CompiledSample {
    expr: SampleExpr,
}

impl CompiledSample {
    pub fn compile(expr: &SampleExpr) -> Result<CompiledSample, String> {
        Ok(CompiledSample { expr: expr.clone() })
    }

    /// `Err(())` is a miss (data not there yet); `Ok(None)` is an absent sample.
    #[allow(clippy::result_unit_err)]
    pub fn eval(&self, ctx: &dyn StreamCtx) -> Result<Option<Sample>, ()> {
        let _ = (ctx, &self.expr);
        Ok(None)
    }
}
