//! Every setting with its documentation ([`FIELDS`]): what `photomesh config init` writes as
//! a fully commented default file, and what `photomesh config show` prints with each value's
//! source.

use std::path::Path;

use super::{Config, ConfigError, format_duration, format_size};

/// One documented setting.
pub struct Field {
    /// Its section (`[node]`).
    pub section: &'static str,
    /// Its key in the section.
    pub key: &'static str,
    /// What it does, what is allowed, and its default: comment lines of the default file.
    pub doc: &'static str,
    /// What `None` means, for a setting that may be unset.
    pub unset: &'static str,
    /// Its value in a configuration, as TOML (`None` when unset).
    pub value: fn(&Config) -> Option<String>,
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Every setting, in the order of the file.
pub const FIELDS: &[Field] = &[
    Field {
        section: "node",
        key: "listen",
        doc: "Where `photomesh run` listens for the mesh's devices: IP:PORT. \"[::]:7447\" is\n\
              every address, IPv6 and IPv4 (IPv4 alone where there is no IPv6). Port 0 picks a\n\
              free port. Flag: `run --listen`.",
        unset: "",
        value: |c| Some(quoted(&c.node.listen.to_string())),
    },
    Field {
        section: "node",
        key: "name",
        doc: "The name `photomesh init` gives this device when `--name` is not given, e.g.\n\
              \"laptop\". Other devices show it. Flag: `init --name`.",
        unset: "init needs --name",
        value: |c| c.node.name.as_deref().map(quoted),
    },
    Field {
        section: "peers",
        key: "addresses",
        doc: "Addresses (\"host:port\") where devices of the mesh run, for devices beyond the LAN.\n\
              The running node dials them, in addition to those added with `photomesh peer add`.",
        unset: "",
        value: |c| {
            let items: Vec<String> = c.peers.addresses.iter().map(|a| quoted(a)).collect();
            Some(format!("[{}]", items.join(", ")))
        },
    },
    Field {
        section: "folders",
        key: "ignore",
        doc: "What in the folders is not backed up: every other regular file is. A pattern\n\
              without \"/\" matches a file or folder name anywhere (a folder is skipped whole);\n\
              one with \"/\" matches the path from the folder's root. \"*\" matches within a\n\
              name, \"**\" across folders, \"?\" one character; case is ignored. A list given\n\
              here replaces the default one, which leaves out the litter of operating systems\n\
              and NAS boxes (add to a copy of it).",
        unset: "",
        value: |c| {
            let items: Vec<String> = c.folders.ignore.iter().map(|a| quoted(a)).collect();
            Some(format!("[{}]", items.join(", ")))
        },
    },
    Field {
        section: "discovery",
        key: "advertise",
        doc: "Announce this device on the LAN by mDNS, so the mesh's other devices find it:\n\
              true or false.",
        unset: "",
        value: |c| Some(c.discovery.advertise.to_string()),
    },
    Field {
        section: "discovery",
        key: "browse",
        doc: "Look for the mesh's devices on the LAN by mDNS and dial them: true or false.",
        unset: "",
        value: |c| Some(c.discovery.browse.to_string()),
    },
    Field {
        section: "watch",
        key: "enabled",
        doc: "Watch the folders while the node runs, and record new and changed photos as soon\n\
              as they are complete: true or false.",
        unset: "",
        value: |c| Some(c.watch.enabled.to_string()),
    },
    Field {
        section: "watch",
        key: "rescan_interval",
        doc: "How often the running node rescans every folder in full, to catch what the\n\
              watcher missed: a duration such as \"30s\", \"10m\", \"1h\" or \"1d\".",
        unset: "",
        value: |c| Some(quoted(&format_duration(c.watch.rescan_interval))),
    },
    Field {
        section: "watch",
        key: "deletions",
        doc: "What a photo deleted from a watched folder on the device that added it means: \"keep\"\n\
              (only that this device no longer has its original: the copies stay, and `restore`\n\
              brings it back) or \"trash\" (it goes to the mesh's trash, on every device,\n\
              recoverable for [trash] retention, as iCloud and Google Photos do).",
        unset: "",
        value: |c| Some(quoted(c.watch.deletions.name())),
    },
    Field {
        section: "storage",
        key: "hold",
        doc: "Which photos this device keeps a copy of: \"all\" (every photo of the mesh: a\n\
              laptop, a NAS) or \"own\" (only the photos of its own folders: a phone short of\n\
              space).",
        unset: "",
        value: |c| Some(quoted(c.storage.hold.name())),
    },
    Field {
        section: "storage",
        key: "reserve",
        doc: "Free space the node keeps on the blob store's disk: it fetches no blob that would\n\
              eat into it, says so in its log and `status`, and carries on by itself when space\n\
              appears. A size such as \"1G\" or \"500M\"; \"0\" turns the check off. Unset: 5% of\n\
              the disk, at most 1G.",
        unset: "5% of the disk, at most 1G",
        value: |c| c.storage.reserve.map(|r| quoted(&format_size(r))),
    },
    Field {
        section: "storage",
        key: "max_bytes",
        doc: "The most bytes of blobs this device stores for the mesh (a vault at a friend's\n\
              house): past it, it fetches no more, says so in its log and `status`, and every\n\
              member's `status` shows it running out. A size such as \"500G\". Unset: no cap\n\
              but the disk.",
        unset: "no cap but the disk",
        value: |c| c.storage.max_bytes.map(|r| quoted(&format_size(r))),
    },
    Field {
        section: "storage",
        key: "free_up_copies",
        doc: "How many verified copies on other devices a photo needs before `free-up-space`\n\
              removes its original from this device's folders (and `status` counts a photo so\n\
              freed safe): a whole number from 1.",
        unset: "",
        value: |c| Some(c.storage.free_up_copies.to_string()),
    },
    Field {
        section: "scrub",
        key: "period",
        doc: "How often the running node re-verifies every blob it stores (a damaged one is set\n\
              aside and fetched again from the peers): a duration such as \"30d\" or \"7d\".",
        unset: "",
        value: |c| Some(quoted(&format_duration(c.scrub.period))),
    },
    Field {
        section: "scrub",
        key: "max_rate",
        doc: "At most this many bytes a second read by the scrub, so it never disturbs a Pi or a\n\
              phone: a size such as \"10M\".",
        unset: "",
        value: |c| c.scrub.max_rate.map(|r| quoted(&format_size(r))),
    },
    Field {
        section: "nat",
        key: "map_port",
        doc: "Whether the running node asks the router for a port mapping (PCP, else NAT-PMP,\n\
              which routers often call UPnP), so devices beyond it reach this one: turn it on\n\
              for a device at another house, such as the offsite vault. `status` says whether\n\
              the mapping is in place.",
        unset: "",
        value: |c| Some(c.nat.map_port.to_string()),
    },
    Field {
        section: "nat",
        key: "gateway",
        doc: "The router to ask for the port mapping: an IP address. Default: the default\n\
              gateway.",
        unset: "the default gateway",
        value: |c| c.nat.gateway.map(|g| quoted(&g.to_string())),
    },
    Field {
        section: "web",
        key: "enabled",
        doc: "Whether `photomesh run` serves the page (`photomesh open` opens it): what is safe,\n\
              who is online, adding a device, the trash, uploads from a phone's browser.",
        unset: "",
        value: |c| Some(c.web.enabled.to_string()),
    },
    Field {
        section: "web",
        key: "listen",
        doc: "Where the page is served: IP:PORT. \"127.0.0.1:8470\" is this computer only. Any\n\
              other address (\"0.0.0.0:8470\" for the LAN) needs a password first: `photomesh\n\
              web password`.",
        unset: "",
        value: |c| Some(quoted(&c.web.listen.to_string())),
    },
    Field {
        section: "web",
        key: "hosts",
        doc: "Host names the page answers to besides IP addresses, `localhost` and this\n\
              computer's own name (with and without `.local`), such as [\"nas.example.net\"].\n\
              Any other Host header is refused (a guard against DNS rebinding).",
        unset: "",
        value: |c| {
            Some(format!(
                "[{}]",
                c.web
                    .hosts
                    .iter()
                    .map(|h| quoted(h))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        },
    },
    Field {
        section: "web",
        key: "uploads",
        doc: "Where photos added from a phone's browser go, in a folder per phone, unless a\n\
              folder labelled \"Uploads\" is backed up already: a path. Added as the folder\n\
              \"Uploads\" on the first upload.",
        unset: "HOME/Uploads",
        value: |c| {
            c.web
                .uploads
                .as_ref()
                .map(|p| quoted(&p.display().to_string()))
        },
    },
    Field {
        section: "drill",
        key: "interval",
        doc: "How often the running node runs a restore drill by itself (a sample of photos\n\
              fetched from every other device and checked, as `photomesh drill` does): a\n\
              duration such as \"30d\"; \"0s\" for never.",
        unset: "",
        value: |c| Some(quoted(&format_duration(c.drill.interval))),
    },
    Field {
        section: "trash",
        key: "retention",
        doc: "How long a deleted photo stays in the trash (`photomesh trash restore` brings it\n\
              back) before this device purges its copies: a duration such as \"60d\".",
        unset: "",
        value: |c| Some(quoted(&format_duration(c.trash.retention))),
    },
    Field {
        section: "trash",
        key: "purge_hold",
        doc: "How long after this device hears of a purge another device signed (`trash\n\
              empty`, versions past [versions] keep) it waits before dropping its copies: time\n\
              to revoke a lost or stolen device before its word destroys anything.",
        unset: "",
        value: |c| Some(quoted(&format_duration(c.trash.purge_hold))),
    },
    Field {
        section: "versions",
        key: "keep",
        doc: "Which earlier versions of an edited photo every device keeps (`photomesh versions`\n\
              lists them): \"all\", a number of versions (\"3\": the photo and its two previous\n\
              versions) or a duration (\"90d\": versions replaced less than 90 days ago). Older\n\
              ones are purged like the trash.",
        unset: "",
        value: |c| Some(quoted(&c.versions.keep.name())),
    },
    Field {
        section: "status",
        key: "replica_goal",
        doc: "How many verified copies on distinct devices make a photo safe, for `status`: a\n\
              whole number from 1. Unset: 3, or every member if the mesh has fewer.",
        unset: "3, or every member if the mesh has fewer",
        value: |c| c.status.replica_goal.map(|g| g.to_string()),
    },
    Field {
        section: "log",
        key: "level",
        doc: "What is logged to standard error: \"error\", \"warn\", \"info\", \"debug\" or \"trace\",\n\
              or a filter such as \"photomesh=debug,quinn=warn\". Flag: `--log-level` (or the\n\
              PHOTOMESH_LOG environment variable).",
        unset: "",
        value: |c| Some(quoted(&c.log.level)),
    },
];

/// A fully commented default file: every setting, documented, at its default and commented
/// out (what `photomesh config init` writes).
pub fn default_file() -> String {
    let defaults = Config::default();
    let mut out = String::from(
        "# photomesh configuration. Every setting is optional: a commented-out line shows the\n\
         # default. A command-line flag wins over this file. Unknown keys are errors.\n",
    );
    let mut section = "";
    for field in FIELDS {
        if field.section != section {
            section = field.section;
            out.push_str(&format!("\n[{section}]\n"));
        }
        for line in field.doc.lines() {
            out.push_str(&format!("# {line}\n"));
        }
        match (field.value)(&defaults) {
            Some(value) => out.push_str(&format!("# {} = {value}\n", field.key)),
            None => out.push_str(&format!("# {} =\n", field.key)),
        }
    }
    out
}

/// Writes [`default_file`] to `path`, refusing to overwrite an existing file.
pub fn write_default(path: &Path) -> Result<(), ConfigError> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            match (source.kind(), dir) {
                (std::io::ErrorKind::AlreadyExists, _) => ConfigError::Exists(path.to_owned()),
                (std::io::ErrorKind::NotFound, Some(dir)) if !dir.exists() => {
                    ConfigError::NoHome(dir.to_owned())
                }
                _ => ConfigError::Write {
                    path: path.to_owned(),
                    reason: source,
                },
            }
        })?;
    file.write_all(default_file().as_bytes())
        .map_err(|reason| ConfigError::Write {
            path: path.to_owned(),
            reason,
        })
}
