//! `photomesh drill`: a restore drill, run by the node on this home.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use photomesh::net::control::{self, DrillJob};

use super::format::utc;

/// How often the command asks the node how the drill is going.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// `photomesh drill`. Succeeds (exit 0) only when every device passed.
pub fn drill(home: &Path, sample: usize, json: bool) -> Result<bool> {
    if sample == 0 {
        bail!("--sample 0 checks nothing; give at least 1");
    }
    let started = control::ask_with(home, "drill", serde_json::json!({ "sample": sample }))?;
    if started.is_none() {
        bail!(
            "no node runs on this home: start it (photomesh run), which holds the connections \
             to the other devices, then run the drill again"
        );
    }
    if !json {
        say!("Drilling: {sample} photos from each other device ...");
    }
    let job = loop {
        let job: DrillJob = match control::ask(home, "drill_progress")? {
            Some(v) => serde_json::from_value(v)?,
            None => bail!("the node running on this home stopped during the drill"),
        };
        if !job.running {
            break job;
        }
        std::thread::sleep(FOLLOW_EVERY);
    };
    if let Some(problem) = &job.problem {
        bail!("the drill could not run: {problem}");
    }
    if json {
        out_block!("{}", serde_json::to_string_pretty(&job.devices)?)?;
    } else {
        if job.devices.is_empty() {
            out!("No other device to drill: this device is the mesh's only one.")?;
        }
        for d in &job.devices {
            match (&d.unreachable, d.passed()) {
                (Some(why), _) => out!("{:<16} NOT DRILLED: {why}", d.name)?,
                (None, true) if d.checked == 0 => {
                    out!("{:<16} holds no photo this device knows of", d.name)?
                }
                (None, true) => out!(
                    "{:<16} passed: {} of {} photos came back intact ({})",
                    d.name,
                    d.passed,
                    d.checked,
                    utc(d.at_ms as i64)
                )?,
                (None, false) => {
                    out!(
                        "{:<16} FAILED: {} of {} photos came back intact",
                        d.name,
                        d.passed,
                        d.checked
                    )?;
                    for p in &d.problems {
                        out!("    {p}")?;
                    }
                }
            }
        }
    }
    Ok(job
        .devices
        .iter()
        .all(photomesh::replicate::drill::DeviceDrill::passed))
}
