//! `photomesh run`: the node, until SIGINT or SIGTERM.

use std::path::Path;

use anyhow::Result;
use photomesh::home::Home;
use photomesh::home::config::Config;

/// `photomesh run`.
pub fn run(home: Home, home_path: &Path, config: &Config, hold: Option<String>) -> Result<bool> {
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
    super::runtime()?.block_on(photomesh::daemon::run(
        home_path,
        options,
        |node| {
            let _ = out!("photomesh is running; listening on {}", node.local_addr());
        },
        super::shutdown_signal(),
    ))?;
    Ok(true)
}
