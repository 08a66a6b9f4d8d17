//! `hatop` (Debian package), the curses front end HAProxy operators use, pointed at sluiced's
//! stats socket: it is run in a detached `tmux` session and its screen is read back with
//! `tmux capture-pane`. `.ci/run` installs both.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

/// A tmux session killed when dropped, so a failed test leaves no hatop behind.
struct Tmux(String);

impl Tmux {
    fn start(cmd: &str) -> Tmux {
        let name = format!("sluiced-hatop-{}", std::process::id());
        let st = Command::new("tmux").args(["new-session", "-d", "-s", &name, "-x", "160", "-y", "45", cmd]).status();
        assert!(st.expect("tmux is needed by this test (.ci/run installs it)").success());
        Tmux(name)
    }
    fn screen(&self) -> String {
        let out = Command::new("tmux").args(["capture-pane", "-p", "-t", &self.0]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn keys(&self, keys: &[&str]) {
        assert!(Command::new("tmux").arg("send-keys").arg("-t").arg(&self.0).args(keys).status().unwrap().success());
    }
    /// Waits (at most 15 s) until the screen satisfies `f`; the last screen either way.
    fn wait_for(&self, f: impl Fn(&str) -> bool) -> (bool, String) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let s = self.screen();
            if f(&s) || Instant::now() > deadline {
                return (f(&s), s);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.0]).status();
    }
}

#[test]
fn hatop_shows_the_proxies_and_servers_and_drives_the_cli() {
    let (a, b) = (Backend::named("a"), Backend::named("b"));
    let port = free_port();
    let sock = temp_dir("hatop").join("s.sock");
    let cfg = format!(
        "global\n  stats socket {} level admin\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n\
         frontend web\n  bind 127.0.0.1:{port}\n  default_backend app\nbackend app\n  server alpha {}\n  server beta {}\n",
        sock.display(),
        a.addr(),
        b.addr()
    );
    let _d = Sluiced::start(&cfg, &[port]);
    let t = Tmux::start(&format!("hatop -s {}", sock.display()));
    let (ok, screen) = t.wait_for(|s| s.contains(">>> web") && s.contains(">>> app") && s.contains("alpha") && s.contains("beta"));
    assert!(ok, "hatop did not show the proxies:\n{screen}");
    assert!(screen.contains("FRONTEND") && screen.contains("BACKEND"), "{screen}");
    assert!(screen.contains("-sluiced-"), "the version line names sluiced:\n{screen}");

    // hatop's CLI mode (key 5) sends the command through the same socket.
    t.keys(&["5"]);
    let (ok, screen) = t.wait_for(|s| s.contains("haproxy command line"));
    assert!(ok, "no CLI prompt:\n{screen}");
    t.keys(&["disable server app/beta", "Enter"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ask(&sock, "show servers state app").lines().any(|l| l.contains(" beta ") && l.split(' ').nth(6) == Some("1")) {
        assert!(Instant::now() < deadline, "the command typed in hatop did not reach sluiced:\n{}\n{}", ask(&sock, "show servers state app"), t.screen());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Back on the status screen (ALT-1 from the CLI), beta shows maintenance.
    t.keys(&["M-1"]);
    let (ok, screen) = t.wait_for(|s| s.lines().any(|l| l.starts_with("beta") && l.contains("MAINT")));
    assert!(ok, "beta is not shown in maintenance:\n{screen}");
}
