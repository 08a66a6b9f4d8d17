//! Configuration of `tcp-request` and `tcp-response` rules: the rule lists of each stage and their
//! inspect delays. The actions shared with HTTP rules live in [`super::action`].

use std::time::Duration;

use super::action::{self as act, ActionArgs, ActionDef, CommonAction, Rule, Service, docs, no_args, parse_rule};
use crate::config::registry::{DocTable, KwArgs, ProxyKeyword, Sections};
use crate::config::units::parse_time;
use crate::doc;

/// The layer 4 rules of a proxy, one list per stage, in the order the stages run.
#[derive(Clone, Debug, Default)]
pub struct ProxyTcp {
    /// `tcp-request connection`: run on accept, before any data is read.
    pub connection_rules: Vec<Rule<TcpAction>>,
    /// `tcp-request session`: run once the handshakes (PROXY protocol, TLS) are done.
    pub session_rules: Vec<Rule<TcpAction>>,
    /// `tcp-request content`: run on request data, for up to `request_inspect_delay`.
    pub content_rules: Vec<Rule<TcpAction>>,
    /// `tcp-response content`: run on response data, for up to `response_inspect_delay`.
    pub response_rules: Vec<Rule<TcpAction>>,
    /// `tcp-request inspect-delay`: how long content rules may wait for more data.
    pub request_inspect_delay: Option<Duration>,
    /// `tcp-response inspect-delay`.
    pub response_inspect_delay: Option<Duration>,
}

/// An action of a `tcp-request` or `tcp-response` rule. Each stage's table lists which of these it
/// accepts; the parser never builds one a stage does not allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpAction {
    /// Stops evaluating the stage's rules and lets the stream go on.
    Accept,
    /// Closes the connection (requests) or the stream (responses).
    Reject,
    /// `tcp-response content close`: closes the server connection once the response is sent.
    Close,
    /// `expect-proxy layer4`: the connection starts with a PROXY protocol header.
    ExpectProxy,
    /// `expect-netscaler-cip layer4`: the connection starts with a NetScaler client IP header.
    ExpectNetscalerCip,
    /// `switch-mode http [proto <name>]`: upgrades a TCP frontend stream to HTTP.
    SwitchModeHttp {
        proto: Option<MuxProto>,
    },
    UseService(Service),
    Common(CommonAction),
}

impl From<CommonAction> for TcpAction {
    fn from(c: CommonAction) -> TcpAction {
        TcpAction::Common(c)
    }
}

/// The multiplexer `switch-mode http proto` forces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MuxProto {
    H1,
    H2,
}

const fn def(name: &'static str, parse: fn(&mut ActionArgs<'_>) -> Result<TcpAction, String>, doc: crate::config::registry::Doc) -> ActionDef<TcpAction> {
    ActionDef { name, parse, doc }
}

/// A table entry whose parser is a shared action's.
macro_rules! common {
    ($name:literal, $f:path, $doc:expr) => {
        def($name, |a| $f(a).map(TcpAction::Common), $doc)
    };
}

fn layer4(a: &mut ActionArgs<'_>, action: TcpAction) -> Result<TcpAction, String> {
    a.no_paren()?;
    match a.take() {
        Some("layer4") => Ok(action),
        Some(other) => Err(format!("'{}' expects 'layer4', got '{other}'", a.name)),
        None => Err(format!("'{}' expects 'layer4'", a.name)),
    }
}

fn switch_mode(a: &mut ActionArgs<'_>) -> Result<TcpAction, String> {
    a.no_paren()?;
    match a.need("'http'")? {
        "http" => {}
        other => return Err(format!("'switch-mode' only switches to 'http', got '{other}'")),
    }
    let proto = match a.peek() {
        Some("proto") => {
            a.take();
            match a.need("a protocol name after 'proto'")? {
                "h1" => Some(MuxProto::H1),
                "h2" => Some(MuxProto::H2),
                other => return Err(format!("'switch-mode' : unknown HTTP protocol '{other}' (expected h1 or h2)")),
            }
        }
        _ => None,
    };
    Ok(TcpAction::SwitchModeHttp { proto })
}

const ACCEPT: ActionDef<TcpAction> =
    def("accept", |a| no_args(a, TcpAction::Accept), doc!(Parsed, "accept", "Stops evaluating this stage's rules and accepts.", "accept if trusted"));
const REJECT: ActionDef<TcpAction> = def(
    "reject",
    |a| no_args(a, TcpAction::Reject),
    doc!(Parsed, "reject", "Closes the connection at once; nothing is logged for connection rules.", "reject if blocked"),
);
const SILENT_DROP: ActionDef<TcpAction> = common!("silent-drop", act::silent_drop, docs::SILENT_DROP);
const TRACK_SC0: ActionDef<TcpAction> = common!("track-sc0", act::track_sc0, docs::TRACK_SC0);
const TRACK_SC1: ActionDef<TcpAction> = common!("track-sc1", act::track_sc1, docs::TRACK_SC1);
const TRACK_SC2: ActionDef<TcpAction> = common!("track-sc2", act::track_sc2, docs::TRACK_SC2);
const SC_INC_GPC: ActionDef<TcpAction> = common!("sc-inc-gpc", act::sc_inc_gpc, docs::SC_INC_GPC);
const SC_INC_GPC0: ActionDef<TcpAction> = common!("sc-inc-gpc0", act::sc_inc_gpc0, docs::SC_INC_GPC0);
const SC_INC_GPC1: ActionDef<TcpAction> = common!("sc-inc-gpc1", act::sc_inc_gpc1, docs::SC_INC_GPC1);
const SC_ADD_GPC: ActionDef<TcpAction> = common!("sc-add-gpc", act::sc_add_gpc, docs::SC_ADD_GPC);
const SC_SET_GPT: ActionDef<TcpAction> = common!("sc-set-gpt", act::sc_set_gpt, docs::SC_SET_GPT);
const SC_TAKE_TOKEN: ActionDef<TcpAction> = common!("sc-take-token", act::sc_take_token, docs::SC_TAKE_TOKEN);
const SC_SET_GPT0: ActionDef<TcpAction> = common!("sc-set-gpt0", act::sc_set_gpt0, docs::SC_SET_GPT0);
const SET_VAR: ActionDef<TcpAction> = common!("set-var", act::set_var, docs::SET_VAR);
const SET_VAR_FMT: ActionDef<TcpAction> = common!("set-var-fmt", act::set_var_fmt, docs::SET_VAR_FMT);
const UNSET_VAR: ActionDef<TcpAction> = common!("unset-var", act::unset_var, docs::UNSET_VAR);
const CAPTURE: ActionDef<TcpAction> = common!("capture", act::capture_len, docs::CAPTURE_LEN);
const SET_SRC: ActionDef<TcpAction> = common!("set-src", act::set_src, docs::SET_SRC);
const SET_DST: ActionDef<TcpAction> = common!("set-dst", act::set_dst, docs::SET_DST);
const SET_DST_PORT: ActionDef<TcpAction> = common!("set-dst-port", act::set_dst_port, docs::SET_DST_PORT);
const SET_MARK: ActionDef<TcpAction> = common!("set-mark", act::set_mark, docs::SET_MARK);
const SET_TOS: ActionDef<TcpAction> = common!("set-tos", act::set_tos, docs::SET_TOS);

/// `tcp-request connection` actions.
pub static CONNECTION_ACTIONS: &[ActionDef<TcpAction>] = &[
    ACCEPT,
    REJECT,
    def(
        "expect-proxy",
        |a| layer4(a, TcpAction::ExpectProxy),
        doc!(Parsed, "expect-proxy layer4", "Reads a PROXY protocol header (v1 or v2) before anything else.", "expect-proxy layer4 if { src 10.0.0.0/8 }"),
    ),
    def(
        "expect-netscaler-cip",
        |a| layer4(a, TcpAction::ExpectNetscalerCip),
        doc!(Parsed, "expect-netscaler-cip layer4", "Reads a NetScaler Client IP insertion header before anything else.", "expect-netscaler-cip layer4"),
    ),
    TRACK_SC0,
    TRACK_SC1,
    TRACK_SC2,
    SC_INC_GPC,
    SC_INC_GPC0,
    SC_INC_GPC1,
    SC_ADD_GPC,
    SC_SET_GPT,
    SC_SET_GPT0,
    SC_TAKE_TOKEN,
    SET_SRC,
    SET_DST,
    SET_MARK,
    SET_TOS,
    CAPTURE,
    SET_VAR,
    SET_VAR_FMT,
    UNSET_VAR,
    SILENT_DROP,
];

/// `tcp-request session` actions.
pub static SESSION_ACTIONS: &[ActionDef<TcpAction>] = &[
    ACCEPT,
    REJECT,
    TRACK_SC0,
    TRACK_SC1,
    TRACK_SC2,
    SC_INC_GPC,
    SC_INC_GPC0,
    SC_INC_GPC1,
    SC_ADD_GPC,
    SC_SET_GPT,
    SC_SET_GPT0,
    SC_TAKE_TOKEN,
    SET_VAR,
    SET_VAR_FMT,
    UNSET_VAR,
    SILENT_DROP,
];

/// `tcp-request content` actions.
pub static CONTENT_ACTIONS: &[ActionDef<TcpAction>] = &[
    ACCEPT,
    REJECT,
    TRACK_SC0,
    TRACK_SC1,
    TRACK_SC2,
    SC_INC_GPC,
    SC_INC_GPC0,
    SC_INC_GPC1,
    SC_ADD_GPC,
    SC_SET_GPT,
    SC_SET_GPT0,
    SC_TAKE_TOKEN,
    CAPTURE,
    SET_VAR,
    SET_VAR_FMT,
    UNSET_VAR,
    SET_DST,
    SET_DST_PORT,
    common!("do-resolve", act::do_resolve, docs::DO_RESOLVE),
    common!("set-log-level", act::set_log_level, docs::SET_LOG_LEVEL),
    common!("set-nice", act::set_nice, docs::SET_NICE),
    common!("set-priority-class", act::set_priority_class, docs::SET_PRIORITY_CLASS),
    common!("set-priority-offset", act::set_priority_offset, docs::SET_PRIORITY_OFFSET),
    def(
        "switch-mode",
        switch_mode,
        doc!(
            Parsed,
            "switch-mode http [proto <h1|h2>]",
            "Upgrades the stream to HTTP so HTTP rules apply from here on.",
            "switch-mode http proto h2 if is_h2_preface"
        ),
    ),
    def("use-service", |a| act::parse_service(a).map(TcpAction::UseService), docs::USE_SERVICE),
    SILENT_DROP,
];

/// `tcp-response content` actions.
pub static RESPONSE_ACTIONS: &[ActionDef<TcpAction>] = &[
    ACCEPT,
    REJECT,
    def(
        "close",
        |a| no_args(a, TcpAction::Close),
        doc!(Parsed, "close", "Closes the server connection once the response has been forwarded.", "close if is_last"),
    ),
    SET_VAR,
    SET_VAR_FMT,
    UNSET_VAR,
    SILENT_DROP,
];

fn one_time(a: &KwArgs<'_>) -> Result<Duration, String> {
    let v = a.need(0, "time value")?;
    a.at_most(1)?;
    parse_time(v)
}

fn kw(name: &'static str, sections: Sections, parse: crate::config::registry::ProxyParse, doc: crate::config::registry::Doc) -> ProxyKeyword {
    ProxyKeyword { name, sections, negatable: false, parse, doc }
}

pub fn proxy_keywords() -> Vec<ProxyKeyword> {
    use Sections as S;
    vec![
        kw(
            "tcp-request connection",
            S::FE,
            |a, p| {
                let r = parse_rule("tcp-request connection", CONNECTION_ACTIONS, a, p)?;
                p.l4.connection_rules.push(r);
                Ok(())
            },
            doc!(
                Parsed,
                "tcp-request connection <action> [if|unless <cond>]",
                "Acts on a new connection before reading from it; actions are listed under 'tcp-request connection actions'.",
                "tcp-request connection reject if { src -f /etc/sluiced/blocklist }"
            ),
        ),
        kw(
            "tcp-request session",
            S::FE,
            |a, p| {
                let r = parse_rule("tcp-request session", SESSION_ACTIONS, a, p)?;
                p.l4.session_rules.push(r);
                Ok(())
            },
            doc!(
                Parsed,
                "tcp-request session <action> [if|unless <cond>]",
                "Acts once the connection's handshakes are done; actions are listed under 'tcp-request session actions'.",
                "tcp-request session track-sc0 src"
            ),
        ),
        kw(
            "tcp-request content",
            S::ALL,
            |a, p| {
                let r = parse_rule("tcp-request content", CONTENT_ACTIONS, a, p)?;
                p.l4.content_rules.push(r);
                Ok(())
            },
            doc!(
                Parsed,
                "tcp-request content <action> [if|unless <cond>]",
                "Acts on request contents, waiting up to the inspect delay (mode tcp), or once per request on its complete head (mode http); actions are listed under 'tcp-request content actions'. A backend's rules run for the streams and requests switched to it, after the frontend's.",
                "tcp-request content accept if { req.ssl_hello_type 1 }"
            ),
        ),
        kw(
            "tcp-request inspect-delay",
            S::ALL,
            |a, p| {
                p.l4.request_inspect_delay = Some(one_time(a)?);
                Ok(())
            },
            doc!(Parsed, "tcp-request inspect-delay <time>", "How long 'tcp-request content' rules may wait for request data.", "tcp-request inspect-delay 5s"),
        ),
        kw(
            "tcp-response content",
            S::BE,
            |a, p| {
                let r = parse_rule("tcp-response content", RESPONSE_ACTIONS, a, p)?;
                p.l4.response_rules.push(r);
                Ok(())
            },
            doc!(
                Parsed,
                "tcp-response content <action> [if|unless <cond>]",
                "Acts on response contents, waiting up to the inspect delay; actions are listed under 'tcp-response content actions'.",
                "tcp-response content reject if { res.payload(0,4) -m bin 00000000 }"
            ),
        ),
        kw(
            "tcp-response inspect-delay",
            S::BE,
            |a, p| {
                p.l4.response_inspect_delay = Some(one_time(a)?);
                Ok(())
            },
            doc!(
                Parsed,
                "tcp-response inspect-delay <time>",
                "How long 'tcp-response content' rules may wait for response data.",
                "tcp-response inspect-delay 2s"
            ),
        ),
    ]
}

pub fn doc_tables() -> Vec<DocTable> {
    vec![
        act::doc_table("tcp-request connection actions", CONNECTION_ACTIONS),
        act::doc_table("tcp-request session actions", SESSION_ACTIONS),
        act::doc_table("tcp-request content actions", CONTENT_ACTIONS),
        act::doc_table("tcp-response content actions", RESPONSE_ACTIONS),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::expr::Polarity;
    use crate::config::testing::{alerts, load, ok};
    use crate::l4::action::{CaptureSlot, GpcSlot, GptSlot, IntOrExpr, VarScope};

    fn tcp(text: &str) -> ProxyTcp {
        ok(text).proxies.remove(0).l4
    }

    const FE: &str = "frontend fe\n  bind :8080\n  acl blocked path_beg /x\n";

    #[test]
    fn connection_rules_keep_action_and_condition() {
        let t = tcp(&format!("{FE}  tcp-request connection reject if blocked\n  tcp-request connection accept\n"));
        assert_eq!(t.connection_rules.len(), 2);
        assert_eq!(t.connection_rules[0].action, TcpAction::Reject);
        assert_eq!(t.connection_rules[0].cond.as_ref().map(|c| c.polarity), Some(Polarity::If));
        assert_eq!(t.connection_rules[0].span.line, 4);
        assert_eq!(t.connection_rules[1].action, TcpAction::Accept);
        assert!(t.connection_rules[1].cond.is_none());
    }

    #[test]
    fn expect_proxy_requires_layer4() {
        let t = tcp(&format!("{FE}  tcp-request connection expect-proxy layer4 unless blocked\n"));
        assert_eq!(t.connection_rules[0].action, TcpAction::ExpectProxy);
        let errs = alerts(&format!("{FE}  tcp-request connection expect-proxy layer7\n"));
        assert!(errs.iter().any(|e| e.contains("t.cfg:4") && e.contains("'tcp-request connection'") && e.contains("'layer4'")), "{errs:?}");
    }

    #[test]
    fn track_sc_records_the_table_reference() {
        let text = "frontend fe\n  bind :80\n  tcp-request connection track-sc1 src table nosuch\n";
        let errs = alerts(text);
        assert!(errs.iter().any(|e| e.contains("t.cfg:3") && e.contains("stick-table 'nosuch'")), "{errs:?}");
    }

    #[test]
    fn track_sc_without_table_uses_the_proxy() {
        let t = tcp(&format!("{FE}  stick-table type ip size 10\n  tcp-request connection track-sc2 src\n"));
        match &t.connection_rules[0].action {
            TcpAction::Common(CommonAction::TrackSc { sc, table, .. }) => {
                assert_eq!(*sc, 2);
                assert!(table.is_none());
            }
            other => panic!("unexpected {other:?}"),
        }
        // Without a table of its own the proxy cannot track: an error at validation, not at compile.
        let (line, kw, msg) = crate::config::testing::one_alert(&format!("{FE}  tcp-request connection track-sc2 src\n"));
        assert_eq!((line, kw.as_str()), (4, "tcp-request connection"));
        assert!(msg.contains("without 'table' tracks in the stick-table of proxy 'fe', which declares none"), "{msg}");
    }

    #[test]
    fn gpc_and_gpt_actions_parse_their_slots() {
        let t = tcp(&format!(
            "{FE}  tcp-request connection sc-inc-gpc0(1)\n  tcp-request connection sc-inc-gpc(3,2)\n  tcp-request connection sc-set-gpt0(0) 42\n"
        ));
        assert_eq!(t.connection_rules[0].action, TcpAction::Common(CommonAction::IncGpc { sc: 1, slot: GpcSlot::Gpc0 }));
        assert_eq!(t.connection_rules[1].action, TcpAction::Common(CommonAction::IncGpc { sc: 2, slot: GpcSlot::Array(3) }));
        assert_eq!(t.connection_rules[2].action, TcpAction::Common(CommonAction::SetGpt { sc: 0, slot: GptSlot::Gpt0, value: IntOrExpr::Int(42) }));
    }

    #[test]
    fn stick_counter_out_of_range_is_an_error() {
        let errs = alerts(&format!("{FE}  tcp-request connection sc-inc-gpc0(3)\n"));
        assert!(errs.iter().any(|e| e.contains("t.cfg:4") && e.contains("invalid stick counter '3'")), "{errs:?}");
    }

    #[test]
    fn missing_parenthesis_argument_is_an_error() {
        let errs = alerts(&format!("{FE}  tcp-request connection sc-inc-gpc0\n"));
        assert!(errs.iter().any(|e| e.contains("t.cfg:4") && e.contains("in parentheses")), "{errs:?}");
    }

    #[test]
    fn session_rules_set_scoped_variables() {
        let t = tcp(&format!("{FE}  tcp-request session set-var(sess.src,ifnotset) src\n"));
        match &t.session_rules[0].action {
            TcpAction::Common(CommonAction::SetVar { var, conds, .. }) => {
                assert_eq!(var.scope, VarScope::Sess);
                assert_eq!(var.name, "src");
                assert_eq!(conds, &[act::VarCond::IfNotSet]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn connection_rules_have_the_variable_actions() {
        let t = tcp(&format!(
            "{FE}  tcp-request connection set-var(sess.a) src\n  tcp-request connection set-var-fmt(sess.b) %[src]\n  tcp-request connection unset-var(sess.a)\n"
        ));
        assert!(matches!(&t.connection_rules[0].action, TcpAction::Common(CommonAction::SetVar { .. })));
        assert!(matches!(&t.connection_rules[1].action, TcpAction::Common(CommonAction::SetVarFmt { .. })));
        assert!(matches!(&t.connection_rules[2].action, TcpAction::Common(CommonAction::UnsetVar { .. })));
    }

    #[test]
    fn variable_without_scope_is_an_error() {
        let errs = alerts(&format!("{FE}  tcp-request session set-var(src) src\n"));
        assert!(errs.iter().any(|e| e.contains("t.cfg:4") && e.contains("must start with a scope")), "{errs:?}");
    }

    #[test]
    fn action_of_another_stage_is_unknown_here() {
        let errs = alerts(&format!("{FE}  tcp-request session expect-proxy layer4\n"));
        assert!(errs.iter().any(|e| e.contains("unknown tcp-request session action 'expect-proxy'")), "{errs:?}");
    }

    #[test]
    fn unknown_action_suggests_a_close_one() {
        let errs = alerts(&format!("{FE}  tcp-request content rejekt\n"));
        assert!(errs.iter().any(|e| e.contains("t.cfg:4") && e.contains("unknown tcp-request content action 'rejekt'; did you mean 'reject'")), "{errs:?}");
    }

    #[test]
    fn missing_action_lists_the_choices() {
        let errs = alerts(&format!("{FE}  tcp-request content\n"));
        assert!(errs.iter().any(|e| e.contains("missing tcp-request content action (expected one of: accept, reject")), "{errs:?}");
    }

    #[test]
    fn content_capture_takes_a_length() {
        let t = tcp(&format!("{FE}  tcp-request content capture req.payload(0,6) len 6\n"));
        assert!(matches!(&t.content_rules[0].action, TcpAction::Common(CommonAction::Capture { slot: CaptureSlot::Len(6), .. })));
        let errs = alerts(&format!("{FE}  tcp-request content capture req.payload(0,6) len 0\n"));
        assert!(errs.iter().any(|e| e.contains("greater than 0")), "{errs:?}");
    }

    #[test]
    fn switch_mode_takes_an_optional_protocol() {
        let t = tcp(&format!("{FE}  tcp-request content switch-mode http proto h2\n  tcp-request content switch-mode http\n"));
        assert_eq!(t.content_rules[0].action, TcpAction::SwitchModeHttp { proto: Some(MuxProto::H2) });
        assert_eq!(t.content_rules[1].action, TcpAction::SwitchModeHttp { proto: None });
        assert!(!alerts(&format!("{FE}  tcp-request content switch-mode tcp\n")).is_empty());
    }

    #[test]
    fn use_service_checks_the_name() {
        let t = tcp(&format!("{FE}  tcp-request content use-service prometheus-exporter\n"));
        assert_eq!(t.content_rules[0].action, TcpAction::UseService(Service::PrometheusExporter));
        let errs = alerts(&format!("{FE}  tcp-request content use-service nope\n"));
        assert!(errs.iter().any(|e| e.contains("unknown service 'nope'")), "{errs:?}");
    }

    #[test]
    fn set_log_level_checks_the_level() {
        let t = tcp(&format!("{FE}  tcp-request content set-log-level silent\n"));
        assert_eq!(t.content_rules[0].action, TcpAction::Common(CommonAction::SetLogLevel(act::LogLevel::Silent)));
        assert!(alerts(&format!("{FE}  tcp-request content set-log-level loud\n")).iter().any(|e| e.contains("unknown log level 'loud'")));
    }

    #[test]
    fn set_nice_range_is_checked() {
        assert!(alerts(&format!("{FE}  tcp-request content set-nice 2000\n")).iter().any(|e| e.contains("between -1024 and 1024")));
    }

    #[test]
    fn set_mark_and_tos_take_hex() {
        let t = tcp(&format!("{FE}  tcp-request connection set-mark 0x20\n  tcp-request connection set-tos 16\n"));
        assert_eq!(t.connection_rules[0].action, TcpAction::Common(CommonAction::SetMark(0x20)));
        assert_eq!(t.connection_rules[1].action, TcpAction::Common(CommonAction::SetTos(16)));
        assert!(!alerts(&format!("{FE}  tcp-request connection set-tos 256\n")).is_empty());
    }

    #[test]
    fn do_resolve_records_the_resolvers_reference() {
        let errs = alerts(&format!("{FE}  tcp-request content do-resolve(txn.ip,dns,ipv4) src\n"));
        assert!(errs.iter().any(|e| e.contains("t.cfg:4") && e.contains("resolvers section 'dns'")), "{errs:?}");
    }

    #[test]
    fn inspect_delays_are_times() {
        let t = tcp("defaults\n  tcp-request inspect-delay 5s\n  tcp-response inspect-delay 200\nfrontend fe\n  bind :80\n");
        assert_eq!(t.request_inspect_delay, Some(Duration::from_secs(5)));
        assert_eq!(t.response_inspect_delay, Some(Duration::from_millis(200)));
        assert!(alerts("frontend fe\n  bind :80\n  tcp-request inspect-delay soon\n").iter().any(|e| e.contains("t.cfg:3")));
    }

    #[test]
    fn response_rules_are_not_allowed_in_frontends() {
        let errs = alerts(&format!("{FE}  tcp-response content close\n"));
        assert!(errs.iter().any(|e| e.contains("not allowed in 'frontend' sections")), "{errs:?}");
    }

    #[test]
    fn response_close_parses_in_backends() {
        let loaded = load("backend be\n  acl last path_beg /x\n  tcp-response content close if last\n  server s 127.0.0.1:80\n");
        assert!(loaded.diags.alerts().next().is_none());
        let p = &loaded.config.expect("config").proxies[0];
        assert_eq!(p.l4.response_rules[0].action, TcpAction::Close);
    }

    #[test]
    fn unknown_acl_in_condition_is_reported_on_the_rule_line() {
        let errs = alerts("frontend fe\n  bind :80\n  tcp-request connection reject if nosuch\n");
        assert!(errs.iter().any(|e| e.contains("t.cfg:3") && e.contains("'tcp-request connection'") && e.contains("no such ACL : 'nosuch'")), "{errs:?}");
    }

    #[test]
    fn leftover_arguments_are_an_error() {
        let errs = alerts(&format!("{FE}  tcp-request connection accept now\n"));
        assert!(errs.iter().any(|e| e.contains("unexpected argument 'now' to 'accept'")), "{errs:?}");
    }

    #[test]
    fn every_action_is_documented() {
        for t in doc_tables() {
            assert!(!t.entries.is_empty());
            for (name, _, d) in &t.entries {
                assert!(!d.syntax.is_empty() && !d.desc.is_empty() && !d.example.is_empty(), "{name}");
            }
        }
    }
}
