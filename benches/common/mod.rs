//! The HTTP benches' one way of running the real `etchr serve` binary in its own process.
//! (Each bench is its own crate, so they include this file with `#[path]`.)

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The server process; killed when dropped.
pub struct Server {
    pub child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `etchr serve --listen 127.0.0.1:0 ARGS` (logging at `error`, client API keys from the
/// environment ignored) and returns it with its base URL, `http://ADDR`.
pub fn start_etchr<I, S>(args: I) -> (Server, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Command::new(env!("CARGO_BIN_EXE_etchr"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("ETCHR_API_KEYS")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start etchr serve");
    let stdout = child.stdout.take().expect("piped stdout");
    let server = Server { child };
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read the server's output");
        if let Some(addr) = line.strip_prefix("etchr listening on ") {
            return (server, format!("http://{addr}"));
        }
    }
    panic!("etchr exited before printing its address");
}
