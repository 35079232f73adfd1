//! The page's HTML, rendered on the server (maud: compiled with the node, every value
//! escaped), and its two assets. Every page is one layout: a header with the device's name
//! and the sections, then the section; it reads on a phone's screen as on a desktop.

use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::library::status::{PeerStatus, Status};
use crate::library::trash::TrashList;
use crate::mesh::{DeviceEntry, Revoked};

use super::auth::Session;
use super::invite::{Invitation, Stage};

/// The stylesheet.
pub const CSS: &str = include_str!("app.css");
/// The script: the live overview and invitation (server-sent events), uploads.
pub const JS: &str = include_str!("app.js");

/// A device not seen for this long is a warning.
const UNSEEN_WARNING_MS: u64 = 14 * 86_400_000;

/// What the overview shows.
pub struct Overview {
    /// This device's status, with what the running node reports live.
    pub status: Status,
    /// Whether this device is a vault (it reads no records: counts only).
    pub vault: bool,
    /// When it was gathered (ms since the epoch).
    pub now_ms: u64,
}

fn layout(title: &str, section: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · photomesh" }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body {
                header {
                    strong { "photomesh" }
                    nav {
                        @for (href, name) in [("/", "Overview"), ("/photos", "Photos"), ("/upload", "Add photos"), ("/devices", "Devices"), ("/trash", "Trash")] {
                            a href=(href) class=[(section == name).then_some("here")] { (name) }
                        }
                    }
                    @if let Some(s) = session.filter(|s| s.login) {
                        form method="post" action="/logout" class="logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            button type="submit" class="link" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A problem, as a page.
pub fn problem(code: StatusCode, why: &str) -> Markup {
    layout(
        "Problem",
        "",
        None,
        html! {
            h1 { (code.canonical_reason().unwrap_or("Problem")) }
            p.problem { (why) }
            p { a href="/" { "Back to the overview" } }
        },
    )
}

/// The login form, with why the last try failed.
pub fn login(failed: Option<&str>) -> Markup {
    layout(
        "Log in",
        "",
        None,
        html! {
            h1 { "Log in" }
            @if let Some(why) = failed { p.problem { (why) } }
            form method="post" action="/login" {
                label { "Password " input type="password" name="password" autofocus required; }
                button type="submit" { "Log in" }
            }
            p.small { "The password was set on this device with " code { "photomesh web password" } "." }
        },
    )
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1} GB", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.0} kB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}

fn ago(now_ms: u64, then_ms: Option<u64>) -> String {
    let Some(then) = then_ms else {
        return "never".into();
    };
    let s = now_ms.saturating_sub(then) / 1000;
    match s {
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

fn plural(n: u64, noun: &str) -> String {
    match (n, noun) {
        (1, _) => format!("1 {noun}"),
        (_, "copy") => format!("{n} copies"),
        _ => format!("{n} {noun}s"),
    }
}

fn utc(ms: u64) -> String {
    let [y, m, d, h, mi, _] = crate::clock::utc_fields(i64::try_from(ms).unwrap_or(i64::MAX));
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02} UTC")
}

/// Text in which `backquoted` parts are commands: shown as code.
fn prose(text: &str) -> Markup {
    html! {
        @for (i, part) in text.split('`').enumerate() {
            @if i % 2 == 1 { code { (part) } } @else { (part) }
        }
    }
}

/// The safety answer in one sentence.
pub fn sentence(o: &Overview) -> String {
    let s = &o.status;
    if o.vault {
        return format!(
            "This is a vault: it keeps {} sealed and cannot read them, so this page shows \
             counts only.",
            plural(s.holding.as_ref().map_or(s.records, |h| h.holds), "copy")
        );
    }
    let Some(safety) = &s.safety else {
        return "This device cannot read its records yet.".into();
    };
    let copying = s.transfers.len() as u64;
    let copying = if copying > 0 {
        format!(" {} being copied now.", plural(copying, "file"))
    } else {
        String::new()
    };
    if safety.photos == 0 {
        format!("No photos yet: add a folder with `photomesh folder add`.{copying}")
    } else if safety.below_goal_total == 0 {
        format!(
            "Every photo is safe: all {} have {} verified copies on distinct devices.{copying}",
            safety.photos, safety.replica_goal
        )
    } else {
        format!(
            "{} of {} photos are not yet safe: they have fewer than {} verified copies.{copying}",
            safety.below_goal_total, safety.photos, safety.replica_goal
        )
    }
}

fn warnings(o: &Overview) -> Vec<String> {
    let s = &o.status;
    let mut out = Vec::new();
    if let Some(short) = &s.disk_short {
        out.push(format!(
            "This device's disk is almost full: {} free, {} kept in reserve; {} wait for room.",
            bytes(short.free),
            bytes(short.reserve),
            plural(short.blobs_waiting, "copy")
        ));
    } else if s.storage.as_ref().is_some_and(|r| r.is_low()) {
        out.push(format!(
            "This device is running out of room: {} free.",
            bytes(s.disk_free.unwrap_or(0))
        ));
    }
    for p in &s.peers {
        let unseen = p
            .last_sync_ms
            .is_none_or(|t| o.now_ms.saturating_sub(t) > UNSEEN_WARNING_MS);
        if unseen && p.connection.is_none() {
            out.push(format!(
                "{} has not been seen {}.",
                p.name,
                match p.last_sync_ms {
                    Some(t) => format!("for {}", ago(o.now_ms, Some(t)).replace(" ago", "")),
                    None => "yet".into(),
                }
            ));
        }
        if p.storage.as_ref().is_some_and(|r| r.is_low()) {
            out.push(format!("{} is running out of room.", p.name));
        }
        if let Some(bad) = p.bad_data.as_ref().filter(|b| b.avoided) {
            out.push(format!(
                "{} sent damaged data ({}); it is not asked for copies for now.",
                p.name, bad.reason
            ));
        }
    }
    let damaged = s.originals_gone.iter().filter(|g| g.damaged).count();
    if damaged > 0 {
        out.push(format!(
            "{} on this device no longer match what was recorded (damaged); `photomesh repair` \
             brings them back from the copies.",
            plural(damaged as u64, "original")
        ));
    }
    if s.scrub.found > 0 {
        out.push(format!(
            "The last check of the stored copies found {} damaged or missing; they are being \
             fetched again.",
            s.scrub.found
        ));
    }
    if let Some(r) = &s.recovery
        && r.held_here
        && r.exported_at_ms.is_none()
    {
        out.push(
            "The recovery phrase has not been written down: `photomesh recovery-key export`."
                .into(),
        );
    }
    out
}

fn peer_row(p: &PeerStatus, now_ms: u64) -> Markup {
    html! {
        tr data-device=(p.device_id) {
            td { (p.name) }
            td { (p.role) }
            td { @if p.connection.is_some() { span.on { "online" } } @else { span.off { "offline" } } }
            td {
                @if let Some(c) = &p.connection { (c.address) }
                @else if let Some(why) = &p.unreachable { span.small { (why) } }
                @else { "–" }
            }
            td { (ago(now_ms, p.last_sync_ms)) }
            td { (plural(p.blobs_held, "copy")) }
            td { (p.storage.as_ref().map_or("–".to_owned(), |r| bytes(r.free))) }
        }
    }
}

/// The overview's live part: what `/events` sends as it changes.
pub fn overview_live(o: &Overview) -> Markup {
    let s = &o.status;
    let (at, below, photos) = s
        .safety
        .as_ref()
        .map_or((0, 0, 0), |x| (x.at_goal, x.below_goal_total, x.photos));
    let copying = (s.transfers.len() as u64).min(below);
    let pct = |n: u64| {
        if photos == 0 {
            0.0
        } else {
            n as f64 * 100.0 / photos as f64
        }
    };
    let warnings = warnings(o);
    html! {
        p #sentence .sentence .(if below == 0 { "safe" } else { "unsafe" }) { (prose(&sentence(o))) }
        @if !o.vault && photos > 0 {
            // An SVG, not styled boxes: the page's Content-Security-Policy allows no inline
            // styles.
            svg.bar role="img" aria-label=(format!("{at} at the goal, {below} below it, {copying} being copied"))
                viewBox="0 0 100 4" preserveAspectRatio="none" {
                rect.at x="0" y="0" height="4" width=(format!("{:.3}", pct(at))) {}
                rect.copying x=(format!("{:.3}", pct(at))) y="0" height="4" width=(format!("{:.3}", pct(copying))) {}
                rect.below x=(format!("{:.3}", pct(at + copying))) y="0" height="4" width=(format!("{:.3}", pct(below - copying))) {}
            }
            p.legend {
                span.k.at {} (at) " at the goal · "
                span.k.copying {} (copying) " being copied · "
                span.k.below {} (below - copying) " below the goal"
            }
        }
        @if !warnings.is_empty() {
            h2 { "Warnings" }
            ul #warnings .warnings { @for w in &warnings { li { (prose(w)) } } }
        }
        h2 { "Devices" }
        table #devices {
            thead { tr { th { "Device" } th { "Role" } th { "Now" } th { "Reached at" } th { "Last synced" } th { "Holds" } th { "Free" } } }
            tbody {
                tr.me {
                    td { (s.device_name) " (this device)" }
                    td { (if o.vault { "vault" } else { "full" }) }
                    td { span.on { "online" } }
                    td { (s.listening.as_deref().unwrap_or("–")) }
                    td { "–" }
                    td { (s.holding.as_ref().map_or("–".to_owned(), |h| plural(h.holds, "copy"))) }
                    td { (s.disk_free.map_or("–".to_owned(), bytes)) }
                }
                @for p in &s.peers { (peer_row(p, o.now_ms)) }
            }
        }
        @if !s.transfers.is_empty() {
            h2 { "Being copied" }
            table #transfers {
                thead { tr { th { "Copy" } th { "From" } th { "Done" } th { "Rate" } th { "Left" } } }
                tbody {
                    @for t in &s.transfers {
                        tr {
                            td { code { (t.blob.get(..12).unwrap_or(&t.blob)) } }
                            td { (t.peers.join(", ")) }
                            td { (bytes(t.done)) " of " (bytes(t.total)) }
                            td { (bytes(t.bytes_per_s as u64)) "/s" }
                            td { (t.eta_s.map_or("–".to_owned(), |e| format!("{e:.0} s"))) }
                        }
                    }
                }
            }
        }
        @if let Some(safety) = s.safety.as_ref().filter(|x| !x.below_goal.is_empty()) {
            h2 { "Not yet safe" }
            table #below {
                thead { tr { th { "Photo" } th { "Verified copies" } } }
                tbody {
                    @for b in safety.below_goal.iter().take(50) {
                        tr { td { (b.folder) "/" (b.path) } td { (b.copies) " of " (safety.replica_goal) } }
                    }
                }
            }
            @if safety.below_goal_total > 50 {
                p.small { "and " (safety.below_goal_total - 50) " more (" code { "photomesh status" } " lists them)." }
            }
        }
    }
}

/// The overview.
pub fn overview_page(o: &Overview, s: &Session) -> Markup {
    layout(
        &o.status.device_name,
        "Overview",
        Some(s),
        html! {
            h1 { (o.status.device_name) }
            div #live data-events="overview" { (overview_live(o)) }
        },
    )
}

fn taken(local_seconds: i64) -> String {
    let [y, m, d, h, mi, _] = crate::clock::utc_fields(local_seconds.saturating_mul(1000));
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}")
}

/// The newest photos as thumbnails (other kinds as labelled tiles), each with its copies
/// and versions, and the photos below the goal.
pub fn photos(
    newest: &[crate::library::status::NewPhoto],
    status: &Status,
    vault: bool,
    s: &Session,
) -> Markup {
    let goal = status.safety.as_ref().map_or(0, |x| x.replica_goal);
    layout(
        "Photos",
        "Photos",
        Some(s),
        html! {
            h1 { "Photos" }
            @if vault {
                p { "This is a vault: it keeps " (status.records) " sealed records and cannot read which photos they are." }
            } @else if newest.is_empty() {
                p { "No photos yet." }
            } @else {
                p.small { "The " (newest.len()) " added last. Thumbnails are made on this device and stay here." }
                div #grid .grid {
                    @for p in newest {
                        figure data-record=(p.record_id) {
                            @if crate::library::thumbs::drawn(p.kind) {
                                img src=(format!("/thumb/{}.jpg", p.record_id)) alt=(p.path) loading="lazy"
                                    data-kind=(p.kind.name().to_uppercase());
                            } @else {
                                div.tile { (p.kind.name().to_uppercase()) }
                            }
                            figcaption {
                                span.name { (p.path.rsplit('/').next().unwrap_or(&p.path)) }
                                br;
                                span .copies .(if p.copies >= goal { "safe" } else { "unsafe" }) {
                                    (p.copies) " of " (goal) " copies"
                                }
                                @if p.versions > 1 { " · " (p.versions) " versions" }
                                @if let Some(t) = p.taken_local_seconds { br; span.small { (taken(t)) } }
                            }
                        }
                    }
                }
            }
            @if let Some(safety) = &status.safety {
                h2 { "Below the goal" }
                @if safety.below_goal.is_empty() {
                    p #below-none { "None: every photo has " (safety.replica_goal) " verified copies." }
                } @else {
                    table #below {
                        thead { tr { th { "Photo" } th { "Verified copies" } } }
                        tbody {
                            @for b in &safety.below_goal {
                                tr { td { (b.folder) "/" (b.path) } td { (b.copies) " of " (safety.replica_goal) } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// "Add photos": a phone's browser picks photos and videos from its library; the script
/// hashes them, skips those backed up, and sends the rest in chunks that resume.
pub fn upload(vault: bool, s: &Session) -> Markup {
    layout(
        "Add photos",
        "Add photos",
        Some(s),
        html! {
            h1 { "Add photos from this phone" }
            @if vault {
                p.problem { "This device is a vault: it cannot read or record photos. Open the page of a full device." }
            } @else {
                form #upload-form data-csrf=(s.csrf) data-chunk=(super::upload::MAX_CHUNK) {
                    label { "This phone's name "
                        input #device-name type="text" name="device" maxlength="60" required placeholder="e.g. Anna's iPhone";
                    }
                    br;
                    label.pick { "Photos and videos "
                        input #files type="file" name="files" multiple accept="image/*,video/*";
                    }
                }
                p.small { "Each file is hashed on the phone first: what is already backed up is not sent again. An upload cut off goes on where it stopped when the file is picked again." }
                p #upload-summary {}
                ul #picks .picks {}
            }
        },
    )
}

/// The devices, with "add a device" and, for each member, revoke.
pub fn devices(
    devices: &[DeviceEntry],
    full: bool,
    invitation: Option<&Invitation>,
    s: &Session,
) -> Markup {
    layout(
        "Devices",
        "Devices",
        Some(s),
        html! {
            h1 { "Devices" }
            table #members {
                thead { tr { th { "Device" } th { "Role" } th { "Now" } th { "Last seen" } th {} } }
                tbody {
                    @for d in devices {
                        tr data-device=(d.device_id) .revoked[d.revoked] {
                            td { (d.name) @if d.this_device { " (this device)" } }
                            td { (d.role) }
                            td {
                                @if d.revoked { "revoked" }
                                @else if d.this_device || d.online == Some(true) { span.on { "online" } }
                                @else { span.off { "offline" } }
                            }
                            td { (d.last_seen_ms.map_or("never".to_owned(), |t| ago(crate::clock::now_ms(), Some(t)))) }
                            td.actions {
                                @if !d.revoked && d.role != "recovery" && (full || d.this_device) {
                                    a.rename href=(format!("/devices/rename?device={}", d.device_id)) { "Rename…" }
                                }
                                @if full && !d.revoked && !d.this_device && d.role != "recovery" {
                                    " " a.revoke href=(format!("/devices/revoke?device={}", d.device_id)) { "Revoke…" }
                                }
                            }
                        }
                    }
                }
            }
            @if full {
                h2 { "Add a device" }
                @if invitation.is_some_and(|i| matches!(i.stage, Stage::Starting | Stage::Waiting)) {
                    p { "An invitation is open: " a href="/devices/invite" { "show its code" } "." }
                }
                form #invite method="post" action="/devices/invite" {
                    input type="hidden" name="csrf" value=(s.csrf);
                    label { "Role "
                        select name="role" {
                            option value="full" selected { "full: holds and reads every photo" }
                            option value="vault" { "vault: stores photos it cannot read" }
                        }
                    }
                    label { "Code works for "
                        select name="expires" {
                            option value="10m" selected { "10 minutes" }
                            option value="1h" { "1 hour" }
                            option value="1d" { "1 day" }
                        }
                    }
                    button type="submit" { "Add a device" }
                }
                p.small { "The new device scans the code shown next, or runs " code { "photomesh join CODE" } "." }
            } @else {
                p.small { "Devices are added and revoked from a full device." }
            }
        },
    )
}

/// The invitation's live part: its code, or what became of it.
pub fn invitation_live(inv: &Invitation) -> Markup {
    html! {
        div #invitation data-serial=(inv.serial) data-stage=(match &inv.stage {
            Stage::Starting => "starting",
            Stage::Waiting => "waiting",
            Stage::Joined { .. } => "joined",
            Stage::Ended(_) => "ended",
        }) {
            @match &inv.stage {
                Stage::Starting => p { "Making the code…" },
                Stage::Waiting => {
                    p { "Scan this code with the new device (" (inv.role.name()) "), or type its text there:" }
                    @if let Some(code) = &inv.code {
                        @match crate::mesh::qr::to_svg(code) {
                            Ok(svg) => div #qr .qr { (PreEscaped(svg)) },
                            Err(e) => p.problem { (e.to_string()) },
                        }
                        p { code #code .code { (code) } }
                    }
                    p.small { "It works until " (utc(inv.expires_at_ms)) "; this page says when the device joined." }
                },
                Stage::Joined { name, role } => p #joined .sentence .safe { (name) " joined as a " (role) " device." },
                Stage::Ended(why) => p.problem { "The invitation ended: " (why) "." },
            }
            @if !inv.attempts.is_empty() {
                ul.small { @for a in &inv.attempts { li { (a) } } }
            }
        }
    }
}

/// The invitation shown.
pub fn invitation_page(inv: Option<&Invitation>, s: &Session) -> Markup {
    layout(
        "Add a device",
        "Devices",
        Some(s),
        html! {
            h1 { "Add a device" }
            @if let Some(inv) = inv {
                div #live-invite data-events="invite" { (invitation_live(inv)) }
                @if matches!(inv.stage, Stage::Starting | Stage::Waiting) {
                    form method="post" action="/devices/invite/cancel" {
                        input type="hidden" name="csrf" value=(s.csrf);
                        button type="submit" class="secondary" { "Cancel the invitation" }
                    }
                }
            } @else {
                p { "No invitation is open. " a href="/devices" { "Start one" } "." }
            }
            p { a href="/devices" { "Back to the devices" } }
        },
    )
}

/// "Revoke this device?", saying what revoking does.
pub fn revoke_page(d: &DeviceEntry, s: &Session) -> Markup {
    layout(
        "Revoke",
        "Devices",
        Some(s),
        html! {
            h1 { "Revoke " (d.name) "?" }
            ul {
                li { "Every device of the mesh refuses " (d.name) " from the moment it hears of this; it gets no new photos and cannot join again." }
                li { "New photos are sealed with a new key it never had. What it already holds stays readable to it: revoking cannot take back copies." }
                li { "Copies it held no longer count towards a photo's safety; the other devices make new ones." }
            }
            form method="post" action="/devices/revoke" {
                input type="hidden" name="csrf" value=(s.csrf);
                input type="hidden" name="device" value=(d.device_id);
                button type="submit" class="danger" { "Revoke " (d.name) }
                " " a href="/devices" { "Cancel" }
            }
        },
    )
}

/// "Rename this device".
pub fn rename_page(d: &DeviceEntry, s: &Session) -> Markup {
    layout(
        "Rename",
        "Devices",
        Some(s),
        html! {
            h1 { "Rename " (d.name) }
            form #rename method="post" action="/devices/rename" {
                input type="hidden" name="csrf" value=(s.csrf);
                input type="hidden" name="device" value=(d.device_id);
                label { "New name " input type="text" name="name" value=(d.name) maxlength="100" required autofocus; }
                button type="submit" { "Rename" }
                " " a href="/devices" { "Cancel" }
            }
            p.small { "Every device of the mesh shows the new name once it hears of it." }
        },
    )
}

/// What revoking did.
pub fn revoked(id: &photomesh_protocol::identity::DeviceId, r: &Revoked) -> Markup {
    layout(
        "Revoked",
        "Devices",
        None,
        html! {
            h1 #revoked { "Revoked" }
            p { "Device " code { (id.short()) } " is revoked. New photos are sealed with key epoch " (r.epoch) "." }
            @if r.recovery_rotated {
                p.problem { "It made the recovery key, so the recovery key was replaced: export the new phrase now with " code { "photomesh recovery-key export" } "." }
            }
            p { a href="/devices" { "Back to the devices" } }
        },
    )
}

/// The trash: each photo, restore; empty.
pub fn trash(list: &TrashList, vault: bool, s: &Session) -> Markup {
    layout(
        "Trash",
        "Trash",
        Some(s),
        html! {
            h1 { "Trash" }
            @if vault {
                p { "The trash holds " (plural(list.versions, "version")) " (" (bytes(list.bytes)) "). A vault cannot read which photos they are." }
            } @else if list.photos.is_empty() {
                p #empty { "The trash is empty." }
            } @else {
                p { (plural(list.photos.len() as u64, "photo")) ", " (bytes(list.bytes)) ". Each leaves the trash for good on the date shown." }
                table #trash {
                    thead { tr { th { "Photo" } th { "Versions" } th { "Size" } th { "Deleted" } th { "Gone for good" } th {} } }
                    tbody {
                        @for t in &list.photos {
                            tr {
                                td { (t.folder) "/" (t.path) }
                                td { (t.versions) }
                                td { (bytes(t.bytes)) }
                                td { (utc(t.since_ms)) }
                                td { (utc(t.purge_at_ms)) }
                                td {
                                    form method="post" action="/trash/restore" {
                                        input type="hidden" name="csrf" value=(s.csrf);
                                        input type="hidden" name="records" value=(t.records.join(","));
                                        button type="submit" class="secondary" { "Restore" }
                                    }
                                }
                            }
                        }
                    }
                }
                p { a.danger href="/trash/empty" { "Empty the trash…" } }
            }
        },
    )
}

/// "Empty the trash?"
pub fn trash_empty_page(list: &TrashList, s: &Session) -> Markup {
    layout(
        "Empty the trash",
        "Trash",
        Some(s),
        html! {
            h1 { "Empty the trash?" }
            p { "The " (plural(list.photos.len() as u64, "photo")) " in the trash (" (bytes(list.bytes)) ") are deleted for good, on every device. This cannot be undone." }
            form method="post" action="/trash/empty" {
                input type="hidden" name="csrf" value=(s.csrf);
                button type="submit" class="danger" { "Empty the trash" }
                " " a href="/trash" { "Cancel" }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_escaped() {
        let page = problem(StatusCode::BAD_REQUEST, "<script>alert(1)</script>").into_string();
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(page.contains("&lt;script&gt;"));
    }

    #[test]
    fn sizes_and_times_read_as_people_say_them() {
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500_000), "1.5 MB");
        assert_eq!(ago(10_000_000, Some(10_000_000 - 120_000)), "2 min ago");
        assert_eq!(ago(1, None), "never");
        assert_eq!(plural(1, "copy"), "1 copy");
        assert_eq!(plural(3, "copy"), "3 copies");
        assert_eq!(plural(2, "photo"), "2 photos");
    }
}
