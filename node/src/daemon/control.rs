//! The running node's answers on the control socket: `status`, `announce`, and the blob
//! fetches a restore asks for (`fetch`, `fetch_progress`).

use photomesh_protocol::seal::BlobId;

use super::NodeHandle;
use crate::net::control::FetchJob;

/// The blob IDs of a `fetch` request: `{"blobs": ["<hex>", …]}`.
fn parse_blob_list(args: &serde_json::Value) -> Result<Vec<BlobId>, String> {
    let list = args["blobs"]
        .as_array()
        .ok_or("\"fetch\" takes {\"blobs\": [\"<blob ID in hex>\", …]}")?;
    list.iter()
        .map(|v| {
            let text = v.as_str().ok_or("a blob ID must be a string of hex")?;
            let mut id = [0u8; 32];
            hex::decode_to_slice(text, &mut id)
                .map_err(|e| format!("{text:?} is not a blob ID: {e}"))?;
            Ok(BlobId(id))
        })
        .collect()
}

impl NodeHandle {
    /// Answers a control socket request.
    pub(super) fn answer(
        &self,
        verb: &str,
        args: &serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        match verb {
            "status" => serde_json::to_value(self.live()).map_err(|e| e.to_string()),
            "announce" => {
                self.announce();
                Ok(serde_json::Value::Null)
            }
            "fetch" => {
                let wanted = parse_blob_list(args)?;
                self.start_fetch(wanted)?;
                Ok(serde_json::Value::Null)
            }
            "fetch_progress" => {
                let job = self.0.fetch_job.lock();
                serde_json::to_value(&*job).map_err(|e| e.to_string())
            }
            "drill" => {
                let sample = args
                    .get("sample")
                    .and_then(serde_json::Value::as_u64)
                    .map_or(crate::replicate::drill::DEFAULT_SAMPLE, |n| n as usize);
                self.start_drill(sample)?;
                Ok(serde_json::Value::Null)
            }
            "drill_progress" => {
                let job = self.0.drill_job.lock();
                serde_json::to_value(&*job).map_err(|e| e.to_string())
            }
            other => Err(format!(
                "unknown verb {other:?}; this node answers \"status\", \"announce\", \"fetch\", \
                 \"fetch_progress\", \"drill\" and \"drill_progress\""
            )),
        }
    }

    /// Starts fetching `wanted` over the connections the node holds, whatever the hold
    /// policy (a local command asked for these blobs by name). One such fetch at a time.
    fn start_fetch(&self, wanted: Vec<BlobId>) -> Result<(), String> {
        {
            let mut job = self.0.fetch_job.lock();
            if job.as_ref().is_some_and(|j| j.running) {
                return Err("a fetch is already running on this node; wait for it".into());
            }
            *job = Some(FetchJob {
                running: true,
                wanted: wanted.len(),
                fetched: 0,
                problems: Vec::new(),
            });
        }
        let node = self.clone();
        self.0
            .runtime
            .spawn(async move { node.run_fetch(wanted).await });
        Ok(())
    }

    async fn run_fetch(&self, mut left: Vec<BlobId>) {
        let total = left.len();
        let links = self.links();
        let mut problems = Vec::new();
        if links.is_empty() {
            problems.push("no member of the mesh is connected to this node".to_owned());
        }
        let engine = &self.0.engine;
        // Originals found gone, or stored copies a restore found damaged and evicted, are
        // no longer held: the held set reloads before it decides what to fetch.
        if let Err(e) = engine.held.refresh(&*self.0.home.lock().await) {
            problems.push(format!("reading the index failed: {e}"));
        }
        for link in links {
            left.retain(|b| !engine.held.contains(b));
            if left.is_empty() {
                break;
            }
            let fetched = crate::replicate::restore_fetch::fetch_from(
                &self.0.home,
                engine,
                &link.connection,
                link.device,
                &self.0.transfers,
                left.iter()
                    .map(|&b| crate::replicate::fetcher::Wanted::unknown(b))
                    .collect(),
                Some(self.helpers()),
            )
            .await;
            if let Err(e) = fetched {
                problems.push(format!("{}: {e}", link.device));
            }
            left.retain(|b| !engine.held.contains(b));
            if let Some(job) = self.0.fetch_job.lock().as_mut() {
                job.fetched = total - left.len();
            }
        }
        if let Some(job) = self.0.fetch_job.lock().as_mut() {
            job.fetched = total - left.len();
            job.problems = problems;
            job.running = false;
        }
    }
}
