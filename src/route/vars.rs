//! Variables: where `set-var` stores a sample and `var()` finds it, the `set-var` conditions, and
//! the variable actions every rule family shares (`set-var`, `set-var-fmt`, `unset-var`).
//!
//! Scopes, as in HAProxy:
//!
//! - `proc`: shared by every worker, for the life of the routing table ([`ProcVars`]);
//! - `sess`: the client connection (kept across the requests of a keep-alive connection);
//! - `txn`: one transaction (an HTTP request and its response, or a whole TCP stream);
//! - `req` and `res`: one list, emptied when the response starts, so a `req.` variable is seen only
//!   while the request is processed and a `res.` one only while the response is.
//!
//! A scope is a short list searched by name, as HAProxy keeps it: a stream has few variables. An
//! empty list owns no memory, so a configuration without variables costs nothing per request.
//!
//! One difference with HAProxy: HAProxy creates every `proc.` variable the configuration names when
//! it loads it (unset), so `ifexists` on a `proc.` variable holds before anything set it. Here a
//! variable exists once set, in every scope, and `ifset`/`ifnotset` mean `ifexists`/`ifnotexists`.

use std::cell::RefCell;
use std::sync::Mutex;

use super::eval::{CompiledSample, Sample, StreamCtx};
use super::logformat::CompiledLf;
use crate::l4::action::{CommonAction, VarCond, VarName, VarScope};

/// The variables of one scope: (name without the scope, value).
type Scope = Vec<(String, Sample)>;

/// The `set-var` conditions of one call, as a bit set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VarConds(u8);

impl VarConds {
    pub fn from_config(conds: &[VarCond]) -> VarConds {
        VarConds(conds.iter().fold(0, |bits, c| bits | Self::bit(*c)))
    }

    fn bit(c: VarCond) -> u8 {
        match c {
            VarCond::IfExists => 1,
            VarCond::IfNotExists => 2,
            VarCond::IfEmpty => 4,
            VarCond::IfNotEmpty => 8,
            VarCond::IfSet => 16,
            VarCond::IfNotSet => 32,
            VarCond::IfGt => 64,
            VarCond::IfLt => 128,
        }
    }

    fn has(self, c: VarCond) -> bool {
        self.0 & Self::bit(c) != 0
    }

    /// Whether a variable whose value is `current` (`None`: it does not exist) may take `new`, as
    /// HAProxy's `var_set` decides: `ifempty`/`ifnotempty` look at the new value (a number or an
    /// address is never empty); `ifgt`/`iflt` compare two integers and set only when the current
    /// value is greater (less) than the new one, and do not apply to other types.
    pub fn allow(self, current: Option<&Sample>, new: &Sample) -> bool {
        use VarCond::*;
        let exists = current.is_some();
        if (exists && (self.has(IfNotExists) || self.has(IfNotSet))) || (!exists && (self.has(IfExists) || self.has(IfSet))) {
            return false;
        }
        let empty = match new {
            Sample::Str(s) => Some(s.is_empty()),
            Sample::Bin(b) => Some(b.is_empty()),
            _ => None,
        };
        if (self.has(IfEmpty) && empty != Some(true)) || (self.has(IfNotEmpty) && empty == Some(true)) {
            return false;
        }
        if let (Some(Sample::Int(old)), Sample::Int(n)) = (current, new)
            && ((self.has(IfGt) && old <= n) || (self.has(IfLt) && old >= n))
        {
            return false;
        }
        true
    }
}

/// Stores `value` under `name` when `conds` allow; returns whether it did.
fn set_in(scope: &mut Scope, name: &str, value: Sample, conds: VarConds) -> bool {
    let at = scope.iter().position(|(n, _)| n == name);
    if !conds.allow(at.map(|i| &scope[i].1), &value) {
        return false;
    }
    match at {
        Some(i) => scope[i].1 = value,
        None => scope.push((name.to_owned(), value)),
    }
    true
}

fn get_in(scope: &Scope, name: &str) -> Option<Sample> {
    scope.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

fn unset_in(scope: &mut Scope, name: &str) {
    scope.retain(|(n, _)| n != name);
}

/// The `proc.` variables, shared by every worker. A lock, not per-worker copies: a `proc.`
/// variable set by one connection must be seen by the next whatever worker accepts it. Only
/// configurations that use `proc.` variables ever take it.
#[derive(Debug, Default)]
pub struct ProcVars(Mutex<Scope>);

impl ProcVars {
    fn with<R>(&self, f: impl FnOnce(&mut Scope) -> R) -> R {
        // A panic while holding the lock leaves a list that is still whole: keep using it.
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }
}

/// The variables of one client connection: `sess`, and those of the current transaction.
#[derive(Debug, Default)]
pub struct Vars {
    sess: Scope,
    txn: Scope,
    /// `req.` variables until the response starts, `res.` ones after.
    reqres: Scope,
    /// The response has started: `reqres` holds `res.` variables.
    response: bool,
}

impl Vars {
    /// A new transaction starts on the connection: `txn`, `req` and `res` start empty (the lists
    /// keep their memory, so this allocates nothing).
    pub fn new_transaction(&mut self) {
        self.txn.clear();
        self.reqres.clear();
        self.response = false;
    }

    /// The response starts: the `req.` variables end, `res.` ones may be set.
    pub fn start_response(&mut self) {
        if !self.response {
            self.reqres.clear();
            self.response = true;
        }
    }

    /// The list of a scope, or `None` when the scope is not available now (`req.` during the
    /// response, `res.` during the request; `proc.` lives elsewhere).
    fn scope(&mut self, scope: VarScope) -> Option<&mut Scope> {
        match scope {
            VarScope::Sess => Some(&mut self.sess),
            VarScope::Txn => Some(&mut self.txn),
            VarScope::Req if !self.response => Some(&mut self.reqres),
            VarScope::Res if self.response => Some(&mut self.reqres),
            _ => None,
        }
    }
}

/// What a stream's rules and samples read and write variables through: its connection's
/// variables and the process's.
#[derive(Clone, Copy, Debug)]
pub struct VarStore<'a> {
    pub stream: &'a RefCell<Vars>,
    pub proc: &'a ProcVars,
}

impl VarStore<'_> {
    /// A copy of the variable's value; `None` when it is not set or its scope is not available.
    pub fn get(&self, var: &VarName) -> Option<Sample> {
        match var.scope {
            VarScope::Proc => self.proc.with(|s| get_in(s, &var.name)),
            scope => get_in(self.stream.borrow_mut().scope(scope)?, &var.name),
        }
    }

    /// Stores `value` when `conds` allow and the scope is available; returns whether it did.
    pub fn set(&self, var: &VarName, value: Sample, conds: VarConds) -> bool {
        match var.scope {
            VarScope::Proc => self.proc.with(|s| set_in(s, &var.name, value, conds)),
            scope => self.stream.borrow_mut().scope(scope).is_some_and(|s| set_in(s, &var.name, value, conds)),
        }
    }

    pub fn unset(&self, var: &VarName) {
        match var.scope {
            VarScope::Proc => self.proc.with(|s| unset_in(s, &var.name)),
            scope => {
                if let Some(s) = self.stream.borrow_mut().scope(scope) {
                    unset_in(s, &var.name);
                }
            }
        }
    }
}

/// `set-var`, `set-var-fmt` and `unset-var`, compiled: the same at layer 4 and layer 7.
#[derive(Debug)]
pub enum VarAction {
    Set { var: VarName, conds: VarConds, expr: CompiledSample },
    SetFmt { var: VarName, conds: VarConds, fmt: CompiledLf },
    Unset(VarName),
}

impl VarAction {
    /// The compiled action when `a` is a variable action, `None` for the other actions.
    pub fn compile(a: &CommonAction) -> Result<Option<VarAction>, String> {
        Ok(Some(match a {
            CommonAction::SetVar { var, conds, expr } => {
                VarAction::Set { var: var.clone(), conds: VarConds::from_config(conds), expr: CompiledSample::compile(expr)? }
            }
            CommonAction::SetVarFmt { var, conds, fmt } => {
                VarAction::SetFmt { var: var.clone(), conds: VarConds::from_config(conds), fmt: CompiledLf::compile(fmt)? }
            }
            CommonAction::UnsetVar { var } => VarAction::Unset(var.clone()),
            _ => return Ok(None),
        }))
    }

    /// Runs the action on the stream. An expression that gives no sample (or one not complete
    /// yet) stores nothing, as in HAProxy; `set-var-fmt` always stores a string.
    pub fn run(&self, ctx: &dyn StreamCtx) {
        let Some(store) = ctx.vars() else { return };
        match self {
            VarAction::Set { var, conds, expr } => {
                if let Ok(Some(v)) = expr.eval(ctx) {
                    store.set(var, v, *conds);
                }
            }
            VarAction::SetFmt { var, conds, fmt } => {
                store.set(var, Sample::Str(fmt.eval(ctx)), *conds);
            }
            VarAction::Unset(var) => store.unset(var),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l4::action::parse_var_name;

    fn conds(c: &[VarCond]) -> VarConds {
        VarConds::from_config(c)
    }

    fn store_test(f: impl FnOnce(VarStore<'_>)) {
        let stream = RefCell::new(Vars::default());
        let proc = ProcVars::default();
        f(VarStore { stream: &stream, proc: &proc });
    }

    fn v(name: &str) -> VarName {
        parse_var_name(name).unwrap()
    }

    fn s(x: &str) -> Sample {
        Sample::Str(x.into())
    }

    #[test]
    fn exists_conditions_look_at_the_current_variable() {
        use VarCond::*;
        assert!(conds(&[IfNotExists]).allow(None, &s("a")));
        assert!(!conds(&[IfNotExists]).allow(Some(&s("a")), &s("b")));
        assert!(!conds(&[IfExists]).allow(None, &s("a")));
        assert!(conds(&[IfExists]).allow(Some(&s("a")), &s("b")));
        assert!(conds(&[IfNotSet]).allow(None, &s("a")));
        assert!(!conds(&[IfSet]).allow(None, &s("a")));
    }

    #[test]
    fn empty_conditions_look_at_the_new_value() {
        use VarCond::*;
        assert!(conds(&[IfEmpty]).allow(None, &s("")));
        assert!(!conds(&[IfEmpty]).allow(None, &s("x")));
        assert!(!conds(&[IfEmpty]).allow(None, &Sample::Int(0)), "a number is never empty");
        assert!(conds(&[IfNotEmpty]).allow(None, &Sample::Bin(vec![1])));
        assert!(!conds(&[IfNotEmpty]).allow(None, &Sample::Bin(vec![])));
        assert!(conds(&[IfNotEmpty]).allow(None, &Sample::Int(0)));
    }

    #[test]
    fn gt_and_lt_compare_the_current_integer_with_the_new_one() {
        use VarCond::*;
        let five = Sample::Int(5);
        assert!(conds(&[IfGt]).allow(Some(&five), &Sample::Int(3)), "5 > 3: set");
        assert!(!conds(&[IfGt]).allow(Some(&five), &Sample::Int(7)));
        assert!(!conds(&[IfGt]).allow(Some(&five), &Sample::Int(5)));
        assert!(conds(&[IfLt]).allow(Some(&five), &Sample::Int(7)), "5 < 7: set");
        assert!(!conds(&[IfLt]).allow(Some(&five), &Sample::Int(3)));
        assert!(conds(&[IfGt]).allow(None, &Sample::Int(7)), "nothing to compare with: set");
        assert!(conds(&[IfGt]).allow(Some(&s("x")), &Sample::Int(7)), "not two integers: set");
    }

    #[test]
    fn conditions_combine() {
        use VarCond::*;
        assert!(!conds(&[IfExists, IfNotEmpty]).allow(Some(&s("a")), &s("")));
        assert!(conds(&[IfExists, IfNotEmpty]).allow(Some(&s("a")), &s("b")));
    }

    #[test]
    fn a_transaction_resets_txn_and_reqres_but_keeps_sess() {
        store_test(|st| {
            for name in ["sess.a", "txn.b", "req.c"] {
                assert!(st.set(&v(name), s("1"), VarConds::default()));
            }
            st.stream.borrow_mut().new_transaction();
            assert_eq!(st.get(&v("sess.a")), Some(s("1")));
            assert_eq!(st.get(&v("txn.b")), None);
            assert_eq!(st.get(&v("req.c")), None);
        });
    }

    #[test]
    fn req_variables_end_when_the_response_starts() {
        store_test(|st| {
            assert!(!st.set(&v("res.x"), s("1"), VarConds::default()), "no res. scope during the request");
            assert!(st.set(&v("req.x"), s("1"), VarConds::default()));
            st.stream.borrow_mut().start_response();
            assert_eq!(st.get(&v("req.x")), None);
            assert!(st.set(&v("res.x"), s("2"), VarConds::default()));
            assert_eq!(st.get(&v("res.x")), Some(s("2")));
            assert!(!st.set(&v("req.y"), s("1"), VarConds::default()));
        });
    }

    #[test]
    fn proc_variables_are_shared_and_unset_removes() {
        let proc = ProcVars::default();
        let (a, b) = (RefCell::new(Vars::default()), RefCell::new(Vars::default()));
        let (sa, sb) = (VarStore { stream: &a, proc: &proc }, VarStore { stream: &b, proc: &proc });
        assert!(sa.set(&v("proc.n"), Sample::Int(1), VarConds::default()));
        assert_eq!(sb.get(&v("proc.n")), Some(Sample::Int(1)));
        assert!(sa.set(&v("sess.n"), Sample::Int(1), VarConds::default()));
        assert_eq!(sb.get(&v("sess.n")), None, "sess. is per connection");
        sb.unset(&v("proc.n"));
        assert_eq!(sa.get(&v("proc.n")), None);
    }

    #[test]
    fn a_new_transaction_with_no_variables_allocates_nothing() {
        let mut vars = Vars::default();
        vars.new_transaction();
        vars.start_response();
        assert_eq!((vars.sess.capacity(), vars.txn.capacity(), vars.reqres.capacity()), (0, 0, 0));
    }
}
