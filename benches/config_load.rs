//! Configuration load time: parse, validate and compile a generated configuration with 1,000
//! backends of 10 servers each, 5,000 ACLs and a use_backend rule per backend. The target is under
//! 100 ms per load. Run with `cargo bench --bench config_load`; see bench/README.md.

use std::collections::HashMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

const BACKENDS: usize = 1_000;
const SERVERS_PER_BACKEND: usize = 10;
const ACLS: usize = 5_000;
const ITERATIONS: usize = 20;

/// The generated configuration. Only keywords every build reads are used (sections, mode,
/// timeouts, bind, acl, use_backend, default_backend, server with weight and maxconn).
fn generate() -> String {
    let mut s = String::with_capacity(2 << 20);
    s.push_str("global\n    maxconn 100000\n\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n");
    s.push_str("frontend fe_main\n    bind :80\n    bind :8080\n");
    // Five ACLs per backend, of the common kinds: host, path prefix, path suffix, header, source.
    for i in 0..ACLS {
        let b = i / (ACLS / BACKENDS);
        let _ = match i % 5 {
            0 => writeln!(s, "    acl host_{i} hdr(host) -i app{b}.example.com"),
            1 => writeln!(s, "    acl path_{i} path_beg /svc{b}/"),
            2 => writeln!(s, "    acl ext_{i} path_end .svc{b}"),
            3 => writeln!(s, "    acl hdr_{i} req.hdr(x-tenant) -m str tenant{b}"),
            _ => writeln!(s, "    acl src_{i} src 10.{}.{}.0/24", b / 256, b % 256),
        };
    }
    for b in 0..BACKENDS {
        let first = b * (ACLS / BACKENDS);
        let _ = writeln!(s, "    use_backend be_{b} if host_{first} || path_{} || ext_{} hdr_{} || src_{}", first + 1, first + 2, first + 3, first + 4);
    }
    s.push_str("    default_backend be_0\n\n");
    for b in 0..BACKENDS {
        let _ = writeln!(s, "backend be_{b}");
        for n in 0..SERVERS_PER_BACKEND {
            let _ = writeln!(s, "    server s{n} 10.{}.{}.{}:8080 weight {} maxconn 500", 100 + b / 256, b % 256, n + 1, 10 + n);
        }
        s.push('\n');
    }
    s
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let text = generate();
    let env = HashMap::<String, String>::new();
    let lines = text.lines().count();
    let mut times = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let start = Instant::now();
        let loaded = sluiced::config::load_str("generated.cfg", &text, &env);
        let Some(cfg) = loaded.config else {
            let first: Vec<String> = loaded.diags.alerts().take(5).map(|d| d.to_string()).collect();
            panic!("generated configuration does not load:\n{}", first.join("\n"));
        };
        let table = sluiced::route::RouteTable::compile(&cfg).expect("compile");
        let elapsed = start.elapsed();
        assert_eq!(table.backends.len(), BACKENDS);
        assert_eq!(table.backends.iter().map(|b| b.state.servers.len()).sum::<usize>(), BACKENDS * SERVERS_PER_BACKEND);
        times.push(elapsed);
    }
    times.sort();
    println!(
        "config_load: {lines} lines, {} bytes, {BACKENDS} backends x {SERVERS_PER_BACKEND} servers, {ACLS} ACLs, {BACKENDS} use_backend rules",
        text.len()
    );
    println!(
        "config_load: load_str + RouteTable::compile over {ITERATIONS} runs: min {:.2} ms, median {:.2} ms, max {:.2} ms (target < 100 ms)",
        ms(times[0]),
        ms(times[ITERATIONS / 2]),
        ms(times[ITERATIONS - 1])
    );
}
