//! `web password` and `open`: the page the running node serves.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use photomesh::home::config::Config;

/// `photomesh web password`.
pub fn password(home_path: &Path) -> Result<bool> {
    let stdin = std::io::stdin();
    let password = if rustix::termios::isatty(&stdin) {
        let first = read_hidden("New password for the page: ")?;
        let second = read_hidden("The same again: ")?;
        if first != second {
            anyhow::bail!("the two passwords differ; nothing was changed");
        }
        first
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    photomesh::web::set_password(home_path, &password)?;
    out!(
        "The page's password is set ({}). A page listening beyond this computer \
         (`[web] listen`) asks for it; restart the node for a new `[web] listen` to apply.",
        photomesh::web::password_file(home_path).display()
    )?;
    Ok(true)
}

/// Reads a line from the terminal without echoing it.
fn read_hidden(prompt: &str) -> Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    say!("{prompt}");
    let old = tcgetattr(&stdin).context("reading the terminal's settings")?;
    let mut quiet = old.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet).context("turning off the echo")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &old);
    say!("");
    read.context("reading the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// The page's address as a browser on this computer reaches it.
pub fn address(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv6() => "[::1]".to_owned(),
        ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        std::net::IpAddr::V4(v4) => v4.to_string(),
    };
    format!("http://{ip}:{}/", listen.port())
}

/// `photomesh open`.
pub fn open(config: &Config, print: bool) -> Result<bool> {
    if !config.web.enabled {
        anyhow::bail!("the page is off (`[web] enabled = false` in the configuration file)");
    }
    let url = address(config.web.listen);
    if print {
        out!("{url}")?;
        return Ok(true);
    }
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let status = std::process::Command::new(opener)
        .arg(&url)
        .status()
        .with_context(|| format!("no browser could be started ({opener}); open {url} yourself"))?;
    if !status.success() {
        anyhow::bail!("{opener} failed ({status}); open {url} yourself");
    }
    out!("Opened {url} (the node must be running: `photomesh run`).")?;
    Ok(true)
}
