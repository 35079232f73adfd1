//! `photomesh run`: the node, until SIGINT or SIGTERM.

use std::path::Path;

use anyhow::Result;
use photomesh::home::Home;
use photomesh::home::config::Config;

/// `photomesh run`.
pub fn run(
    home: Home,
    home_path: &Path,
    config: &Config,
    hold: Option<String>,
    web: Option<std::net::SocketAddr>,
) -> Result<bool> {
    let hold = hold.unwrap_or_else(|| config.storage.hold.name().to_owned());
    let policy = photomesh::replicate::held::HoldPolicy::parse(&hold)
        .ok_or_else(|| anyhow::anyhow!("--hold {hold:?}: say `all` (the default) or `own`"))?;
    policy.set(&home).map_err(|e| anyhow::anyhow!(e))?;
    drop(home);
    let options = photomesh::daemon::RunOptions {
        listen: config.node.listen,
        peers: config.peers.addresses.clone(),
        reserve: config.storage.reserve,
        max_bytes: config.storage.max_bytes,
        trash_retention: config.trash.retention,
        purge_hold: config.trash.purge_hold,
        keep_versions: config.versions.keep,
        scrub: photomesh::daemon::scrub::ScrubOptions {
            period: config.scrub.period,
            // 0: no limit.
            max_rate: match config.scrub.max_rate {
                Some(0) => u64::MAX,
                rate => rate.unwrap_or(10 << 20),
            },
        },
        map_port: config.nat.map_port.then_some(config.nat.gateway),
        drill_every: (!config.drill.interval.is_zero()).then_some(config.drill.interval),
        discovery: photomesh::daemon::discovery::Settings {
            advertise: config.discovery.advertise,
            browse: config.discovery.browse,
        },
        watch: config
            .watch
            .enabled
            .then(|| photomesh::library::watch::WatchOptions {
                rescan_every: config.watch.rescan_interval,
                selection: config.folders.selection(),
                deletions: config.watch.deletions,
                trash_retention: config.trash.retention,
                ..Default::default()
            }),
    };
    let runtime = super::runtime()?;
    // Bound before the node starts: a page that cannot be served stops `run` here, saying why.
    // A page whose port is taken (another node on this computer has it) is only a warning:
    // the backups matter more. A page that would be open without a password is an error.
    let web = if config.web.enabled {
        let options = photomesh::web::WebOptions {
            listen: web.unwrap_or(config.web.listen),
            hosts: config.web.hosts.clone(),
            targets: super::status::targets(config),
            uploads: config
                .web
                .uploads
                .clone()
                .unwrap_or_else(|| home_path.join("Uploads")),
            selection: config.folders.selection(),
        };
        match photomesh::web::bind(home_path, options) {
            Ok(bound) => Some(bound),
            Err(e @ photomesh::web::WebError::Bind { .. }) => {
                say!("warning: {e}");
                None
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    let shutdown = {
        let _entered = runtime.enter();
        super::shutdown_signal()
    };
    runtime.block_on(photomesh::daemon::run(
        home_path,
        options,
        |node| {
            let _ = out!("photomesh is running; listening on {}", node.local_addr());
            if let Some(web) = web {
                let address = super::web::address(web.local_addr());
                match web.serve(node.clone()) {
                    Ok(_) => {
                        let _ = out!("The page: {address}");
                    }
                    Err(e) => say!("warning: the page is not served: {e}"),
                }
            }
        },
        shutdown,
    ))?;
    Ok(true)
}
