//! The page every node serves, in a real headless Chromium against real running nodes: the
//! overview and its live updates, adding a device by the QR code shown in the page, revoking
//! one, and who may use the page at all (password, login limit, CSRF, Host).
//! Screenshots land in `target/web-screenshots/`.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use photomesh_tests::browser::{Browser, screenshot_path};
use photomesh_tests::http;
use photomesh_tests::page::{Chunk, PageSession};
use photomesh_tests::samples::take_photo;
use photomesh_tests::{Node, photomesh_bin, wait_until};

fn device_id(node: &Node) -> String {
    node.json(&["status"])["device_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Pings until `addr` refuses `node` (a revoked device), bounded.
fn wait_until_refused(node: &Node, addr: &str) -> String {
    wait_until("a refusal", || {
        let run = node.run(&["ping", addr]);
        if run.code != 0 {
            Ok(run.stderr)
        } else {
            Err(run.stdout)
        }
    })
}

#[test]
fn the_overview_is_live_a_device_joins_by_its_qr_code_is_renamed_and_one_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let laptop = Node::init(dir.path(), "laptop");
    let pics = dir.path().join("pics");
    std::fs::create_dir_all(&pics).unwrap();
    take_photo(&pics, "a.jpg", 1);
    take_photo(&pics, "b.jpg", 2);
    laptop.ok(&["folder", "add", pics.to_str().unwrap()]);
    laptop.ok(&["scan"]);
    let tablet = Node::init(dir.path(), "tablet");
    laptop.invite(&tablet, "full");
    let (_laptop_run, laptop_addr, page) = laptop.start_run_web("127.0.0.1:0");
    let base = format!("http://{page}");

    // The overview: the safety sentence and the devices.
    let browser = Browser::start(1000, 1400);
    browser.go(&base);
    let sentence = browser.text("#sentence");
    assert!(
        sentence.contains("2 of 2 photos are not yet safe"),
        "{sentence}"
    );
    let devices = browser.text("#devices");
    assert!(devices.contains("laptop (this device)"), "{devices}");
    assert!(devices.contains("tablet"), "{devices}");
    let warnings = browser.text("#warnings");
    assert!(
        warnings.contains("tablet has not been seen yet"),
        "{warnings}"
    );
    browser.screenshot(&screenshot_path("overview"));

    // Add a device: the page shows a QR code; decoded from a screenshot, it is the code the
    // page prints, and a new device joins with it.
    browser.go(&format!("{base}/devices"));
    browser.click("#invite button[type=submit]");
    browser.find("#qr svg");
    let shown = browser.text("#code");
    let qr_png = screenshot_path("invite-qr");
    browser.element_screenshot("#qr", &qr_png);
    let decoded = photomesh::mesh::qr::read_png(&qr_png).expect("the page's QR code decodes");
    assert!(decoded.eq_ignore_ascii_case(&shown), "{decoded} vs {shown}");
    browser.screenshot(&screenshot_path("add-a-device"));
    let phone = Node::init(dir.path(), "phone");
    let phone_pics = dir.path().join("phone-pics");
    std::fs::create_dir_all(&phone_pics).unwrap();
    phone.ok(&["join", &decoded]);
    let joined = browser.wait_text("#invitation", "the page to say the phone joined", |t| {
        t.contains("phone joined as a full device")
    });
    assert!(!joined.contains("ended"), "{joined}");

    // Live: a photo taken on the phone reaches the laptop, and the laptop's overview shows
    // it without a reload.
    phone.ok(&["folder", "add", phone_pics.to_str().unwrap()]);
    phone.ok(&["peer", "add", &laptop_addr]);
    let (_phone_run, phone_addr) = phone.start_run();
    browser.go(&base);
    browser.script("window.sameDocument = 42;");
    let phone_id = device_id(&phone);
    let phone_now = format!("#devices tr[data-device=\"{phone_id}\"] td:nth-child(3)");
    browser.wait_text(&phone_now, "the phone online", |t| t == "online");
    take_photo(&phone_pics, "p.jpg", 3);
    let sentence = browser.wait_text("#sentence", "the phone's photo on the overview", |t| {
        t.contains("of 3 photos")
    });
    assert!(sentence.contains("not yet safe"), "{sentence}");
    assert_eq!(browser.script("return window.sameDocument;"), 42);
    browser.screenshot(&screenshot_path("overview-live"));

    // Rename the phone from the page: every device calls it so, the phone too.
    browser.go(&format!("{base}/devices"));
    browser.click(&format!("tr[data-device=\"{phone_id}\"] a.rename"));
    browser.fill("#rename input[name=name]", "Anna's phone");
    browser.click("#rename button[type=submit]");
    browser.wait_text("#members", "the new name", |t| t.contains("Anna's phone"));
    wait_until("the phone to know its new name", || {
        let name = phone.json(&["status"])["device_name"].clone();
        if name == "Anna's phone" {
            Ok(())
        } else {
            Err(name.to_string())
        }
    });

    // Revoke the tablet from the page: it says what revoking does, and then every node
    // refuses the tablet. Before, both let it in (the laptop's hello told it of the phone).
    tablet.ok(&["ping", &laptop_addr]);
    tablet.ok(&["ping", &phone_addr]);
    let tablet_id = device_id(&tablet);
    browser.go(&format!("{base}/devices"));
    browser.click(&format!("tr[data-device=\"{tablet_id}\"] a.revoke"));
    let confirm = browser.text("main");
    assert!(confirm.contains("Revoke tablet?"), "{confirm}");
    assert!(confirm.contains("new key it never had"), "{confirm}");
    browser.click("button.danger");
    assert!(browser.text("#revoked").contains("Revoked"));
    let refused = wait_until_refused(&tablet, &laptop_addr);
    assert!(refused.contains("not trusted"), "{refused}");
    let refused = wait_until_refused(&tablet, &phone_addr);
    assert!(refused.contains("not trusted"), "{refused}");
    browser.go(&format!("{base}/devices"));
    let members = browser.text("#members");
    assert!(members.contains("revoked"), "{members}");
    browser.screenshot(&screenshot_path("devices"));
}

#[test]
fn beyond_loopback_the_page_needs_a_password_a_login_its_token_and_its_own_host() {
    let dir = tempfile::tempdir().unwrap();
    let laptop = Node::init(dir.path(), "laptop");

    // Without a password it does not start at all.
    let refused = laptop.run(&["run", "--listen", "127.0.0.1:0", "--web", "0.0.0.0:0"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains("no password is set")
            && refused.stderr.contains("photomesh web password"),
        "{}",
        refused.stderr
    );

    let password = "correct horse battery";
    let mut set = Command::new(photomesh_bin())
        .arg("--home")
        .arg(&laptop.home)
        .args(["web", "password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(set.stdin.take().unwrap(), "{password}").unwrap();
    let out = set.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stored = std::fs::read_to_string(laptop.home.join("web.password")).unwrap();
    assert!(stored.starts_with("$argon2id$") && !stored.contains(password));

    let (_run, _, page) = laptop.start_run_web("0.0.0.0:0");
    let base = format!("http://{page}");

    // Nothing without a session; a foreign Host gets nothing at all.
    let get = http::request(&page, "GET", "/", &[], b"").unwrap();
    assert_eq!(get.status, 303, "{get:?}");
    assert_eq!(get.header("location"), Some("/login"));
    let post = http::request(&page, "POST", "/trash/empty", &[], b"").unwrap();
    assert_eq!(post.status, 401, "{post:?}");
    let login = http::request(&page, "GET", "/login", &[], b"").unwrap();
    assert_eq!(login.header("x-frame-options"), Some("DENY"));
    let policy = login.header("content-security-policy").unwrap();
    assert!(policy.contains("frame-ancestors 'none'") && policy.contains("script-src 'self'"));
    let rebound = http::request(&page, "GET", "/login", &[("Host", "evil.example")], b"").unwrap();
    assert_eq!(rebound.status, 421, "{rebound:?}");

    // The login, in the browser: a wrong password is refused, the right one opens the page.
    let browser = Browser::start(420, 900);
    browser.go(&base);
    assert!(browser.url().ends_with("/login"), "{}", browser.url());
    browser.type_into("input[name=password]", "not it at all");
    browser.click("button[type=submit]");
    assert!(browser.text(".problem").contains("not the password"));
    browser.screenshot(&screenshot_path("login"));
    browser.type_into("input[name=password]", password);
    browser.click("button[type=submit]");
    assert!(browser.text("#sentence").contains("No photos yet"));
    browser.screenshot(&screenshot_path("overview-phone"));

    // With the session's cookie, a POST still needs its token, and a form from another
    // site is refused even with it.
    let cookie = format!("photomesh_session={}", browser.cookie("photomesh_session"));
    let csrf = browser.script("return document.querySelector('input[name=csrf]').value;");
    let csrf = csrf.as_str().unwrap();
    let form = [
        ("Cookie", cookie.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    for body in [String::new(), "csrf=0000".to_owned()] {
        let post = http::request(&page, "POST", "/trash/empty", &form, body.as_bytes()).unwrap();
        assert_eq!(post.status, 403, "{body}: {post:?}");
    }
    let good = format!("csrf={csrf}");
    let mut foreign = form.to_vec();
    foreign.push(("Origin", "http://evil.example"));
    let post = http::request(&page, "POST", "/trash/empty", &foreign, good.as_bytes()).unwrap();
    assert_eq!(post.status, 403, "{post:?}");
    let post = http::request(&page, "POST", "/trash/empty", &form, good.as_bytes()).unwrap();
    assert_eq!(post.status, 303, "{post:?}");
    assert_eq!(post.header("location"), Some("/trash"));

    // Logins are rate-limited: after a few wrong passwords, even the right one waits.
    let login = |pw: &str| {
        let body = format!("password={}", pw.replace(' ', "+"));
        http::request(
            &page,
            "POST",
            "/login",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        )
        .unwrap()
    };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(login("wrong guess").status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let limited = login(password);
    assert_eq!(limited.status, 429, "{limited:?}");
    assert!(limited.text().contains("wait"), "{}", limited.text());
}

/// Corpus files a phone might pick: a camera JPEG, an iPhone HEIC, a video, a WebP, a PNG
/// and a 3DS's MPO.
const PICKS: [&str; 6] = [
    "jpeg/gexiv2-canon-g11.jpeg",
    "heic/exiv2-iphone-xr.heic",
    "mp4/hachoir-quicktime-export.mp4",
    "webp/exiv2-nikon-d5300.webp",
    "png/libavif-pixel4a-exif-chunk.png",
    "mpo/pillow-nintendo-3ds.mpo",
];

fn uploaded(node: &Node) -> Vec<serde_json::Value> {
    node.json(&["photos"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["folder"] == "Uploads")
        .cloned()
        .collect()
}

#[test]
fn photos_picked_in_a_phones_browser_are_recorded_replicated_and_not_sent_twice() {
    let dir = tempfile::tempdir().unwrap();
    let nas = Node::init(dir.path(), "nas");
    let laptop = Node::init(dir.path(), "laptop");
    nas.invite(&laptop, "full");
    let (_nas_run, nas_addr, page) = nas.start_run_web("127.0.0.1:0");
    laptop.ok(&["peer", "add", &nas_addr]);
    let (_laptop_run, _) = laptop.start_run();
    let phone = dir.path().join("camera-roll");
    std::fs::create_dir_all(&phone).unwrap();
    let corpus = photomesh_tests::corpus_files();
    let picks: Vec<std::path::PathBuf> = PICKS
        .iter()
        .map(|p| {
            let to = phone.join(p.rsplit('/').next().unwrap());
            std::fs::copy(corpus.join(p), &to).unwrap();
            to
        })
        .collect();

    let browser = Browser::start(420, 900);
    browser.go(&format!("http://{page}/upload"));

    wait_until("the page's script", || {
        let kind = browser.script("return typeof photomeshBlake3;");
        if kind == "object" {
            Ok(())
        } else {
            Err(kind.to_string())
        }
    });
    // The page's own BLAKE3 agrees with the node's at every chunk and tree boundary.
    for len in [
        0usize,
        1,
        64,
        65,
        1023,
        1024,
        1025,
        2048,
        2049,
        3072,
        5000,
        65_536 * 3 + 7,
    ] {
        let script = format!(
            "const b = new Uint8Array({len}); for (let i = 0; i < b.length; i++) b[i] = i % 251; \
             return photomeshBlake3.hex(b);"
        );
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        assert_eq!(
            browser.script(&script).as_str().unwrap(),
            blake3::hash(&bytes).to_hex().as_str(),
            "{len} bytes"
        );
    }

    browser.type_into("#device-name", "Anna's iPhone");
    let paths: Vec<String> = picks.iter().map(|p| p.display().to_string()).collect();
    browser.type_into("#files", &paths.join("\n"));
    let done = browser.wait_text("#upload-summary", "the uploads to end", |t| !t.is_empty());
    assert_eq!(done, "6 sent, 0 already backed up.");
    browser.screenshot(&screenshot_path("upload"));

    // Recorded in Uploads/<phone>, with the phone's times and the capture times the files
    // carry, and replicated to the laptop.
    let photos = uploaded(&nas);
    assert_eq!(photos.len(), 6, "{photos:?}");
    for (pick, path) in PICKS.iter().zip(&picks) {
        let name = pick.rsplit('/').next().unwrap();
        let photo = photos
            .iter()
            .find(|p| p["path"] == format!("Anna's iPhone/{name}"))
            .unwrap_or_else(|| panic!("{name} not recorded: {photos:?}"));
        let placed = dir.path().join("nas/Uploads/Anna's iPhone").join(name);
        assert_eq!(
            std::fs::read(&placed).unwrap(),
            std::fs::read(path).unwrap()
        );
        let ms = |p: &std::path::Path| {
            std::fs::metadata(p)
                .unwrap()
                .modified()
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        };
        assert_eq!(ms(&placed), ms(path), "{name}: the phone's time is kept");
        if name.ends_with(".jpeg") || name.ends_with(".heic") {
            assert!(photo["capture_local_seconds"].is_i64(), "{photo}");
        }
    }
    wait_until("the uploads on the laptop", || {
        let on_laptop = uploaded(&laptop);
        if on_laptop.len() == 6 {
            Ok(())
        } else {
            Err(format!("{} of 6", on_laptop.len()))
        }
    });
    photomesh_tests::wait_for_verified_blobs(&laptop, 6);

    // Picked again: nothing is sent.
    browser.go(&format!("http://{page}/upload"));
    browser.type_into("#files", &paths.join("\n"));
    let again = browser.wait_text("#upload-summary", "the second pick to end", |t| {
        !t.is_empty()
    });
    assert_eq!(again, "0 sent, 6 already backed up.");

    // The photo page draws the JPEG, WebP, PNG and MPO here, and labels the others.
    browser.go(&format!("http://{page}/photos"));
    browser.find("#grid figure");
    let drawn = wait_until("the thumbnails to load", || {
        let v = browser.script(
            "return Array.from(document.querySelectorAll('#grid img'))\
             .filter(i => i.complete && i.naturalWidth > 0).map(i => i.alt);",
        );
        let v: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        if v.len() == 4 {
            Ok(v)
        } else {
            Err(format!("{v:?}"))
        }
    });
    for kind in [".jpeg", ".webp", ".png", ".mpo"] {
        assert!(drawn.iter().any(|a| a.ends_with(kind)), "{drawn:?}");
    }
    let tiles = browser.text("#grid");
    assert!(tiles.contains("HEIF") && tiles.contains("MP4"), "{tiles}");
    assert!(nas.home.join("thumbs").read_dir().unwrap().count() >= 4);
    browser.screenshot(&screenshot_path("photos"));
}

#[test]
fn an_upload_cut_off_resumes_where_it_stopped_and_a_damaged_one_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let nas = Node::init(dir.path(), "nas");
    let tablet = Node::init(dir.path(), "tablet");
    nas.invite(&tablet, "full");
    // The uploads folder on another file system than the home (a tmpfs): the upload is
    // copied across, not linked.
    let other_disk = tempfile::tempdir_in("/dev/shm").unwrap();
    {
        use std::os::unix::fs::MetadataExt;
        let dev = |p: &std::path::Path| std::fs::metadata(p).unwrap().dev();
        assert_ne!(
            dev(other_disk.path()),
            dev(&nas.home),
            "/dev/shm is not a tmpfs here"
        );
    }
    let uploads = other_disk.path().join("Uploads");
    std::fs::write(
        nas.home.join("config.toml"),
        format!("[web]\nuploads = {:?}\n", uploads.display().to_string()),
    )
    .unwrap();
    let (_run, _, page) = nas.start_run_web("127.0.0.1:0");
    let session = PageSession::open(&page).unwrap();
    let file =
        std::fs::read(photomesh_tests::corpus_files().join("heic/exiv2-iphone-xr.heic")).unwrap();
    let hash = blake3::hash(&file).to_hex().to_string();
    let put_as = |session: &PageSession, hash: &str, offset: usize, bytes: &[u8]| {
        let chunk = Chunk {
            hash,
            offset,
            size: file.len(),
            name: "IMG%200042.HEIC",
            device: "Tom%E2%80%99s%20phone",
            bytes,
        };
        session.put(chunk).unwrap()
    };
    let put = |hash: &str, offset: usize, bytes: &[u8]| put_as(&session, hash, offset, bytes);
    let check = |hash: &str| session.check(hash, file.len()).unwrap();

    // Without the token, nothing is taken.
    let forged = PageSession {
        csrf: "forged".into(),
        ..session.clone()
    };
    assert_eq!(put_as(&forged, &hash, 0, &file[..1000]).status, 403);
    assert_eq!(check(&hash)["have"], 0);

    // The first 400 kB arrive, then the connection is cut: the node says where it stands,
    // refuses a chunk from elsewhere, and takes the rest from there.
    let cut = 400_000;
    let first = put(&hash, 0, &file[..cut]);
    assert_eq!(first.status, 200, "{}", first.text());
    let state = check(&hash);
    assert_eq!(state["backed_up"], false);
    assert_eq!(state["have"], cut);
    let again = put(&hash, 0, &file[..1000]);
    assert_eq!(again.status, 409);
    assert!(
        again.text().contains(&format!("\"have\":{cut}")),
        "{}",
        again.text()
    );
    let rest = put(&hash, cut, &file[cut..]);
    assert_eq!(rest.status, 200, "{}", rest.text());
    let done: serde_json::Value = serde_json::from_slice(&rest.body).unwrap();
    assert_eq!(done["placed"], "Uploads/Tom’s phone/IMG 0042.HEIC");
    assert_eq!(done["recorded"], true);
    assert_eq!(check(&hash)["backed_up"], true);
    let placed = uploads.join("Tom’s phone/IMG 0042.HEIC");
    assert_eq!(std::fs::read(&placed).unwrap(), file);
    let left: Vec<_> = std::fs::read_dir(uploads.join("Tom’s phone"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "no copy left beside it: {left:?}");
    assert_eq!(uploaded(&nas).len(), 1);

    // The library key rotates behind the page's back (a revocation on the command line):
    // what the page records next is sealed with the new epoch, which the revoked tablet
    // never had.
    nas.ok(&["revoke", &device_id(&tablet)]);
    assert_eq!(nas.json(&["status"])["key_epoch"], 2);
    let second =
        std::fs::read(photomesh_tests::corpus_files().join("jpeg/piexif-sony-rx1r.jpg")).unwrap();
    let second_hash = blake3::hash(&second).to_hex().to_string();
    let after = session
        .put(Chunk {
            hash: &second_hash,
            offset: 0,
            size: second.len(),
            name: "after.jpg",
            device: "Tom",
            bytes: &second,
        })
        .unwrap();
    assert_eq!(after.status, 200, "{}", after.text());
    {
        let home = photomesh::home::Home::open(&nas.home).unwrap();
        let rows = home.index.latest_photos(Some("Uploads")).unwrap();
        let epochs: Vec<(String, u32)> = rows
            .iter()
            .map(|r| {
                let p = r.record.open_photo(&home.keys).unwrap();
                (p.path, p.blob_epoch)
            })
            .collect();
        assert!(
            epochs.contains(&("Tom/after.jpg".to_owned(), 2)),
            "{epochs:?}"
        );
        assert!(
            epochs.contains(&("Tom’s phone/IMG 0042.HEIC".to_owned(), 1)),
            "{epochs:?}"
        );
    }

    // Bytes that do not hash to what the page said: refused whole, and started over.
    let wrong = blake3::hash(b"something else").to_hex().to_string();
    let damaged = put(&wrong, 0, &file);
    assert_eq!(damaged.status, 422, "{}", damaged.text());
    assert_eq!(check(&wrong)["have"], 0);
    assert_eq!(uploaded(&nas).len(), 2);
    assert!(
        std::fs::read_dir(nas.home.join("uploads.partial"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn the_trash_is_restored_and_emptied_from_the_page_and_a_vault_shows_counts_only() {
    let dir = tempfile::tempdir().unwrap();
    let laptop = Node::init(dir.path(), "laptop");
    let vault = Node::init(dir.path(), "vault");
    laptop.invite(&vault, "vault");
    let pics = dir.path().join("pics");
    std::fs::create_dir_all(&pics).unwrap();
    for (i, name) in ["a.jpg", "b.jpg", "c.jpg"].iter().enumerate() {
        take_photo(&pics, name, 10 + i as u64);
    }
    laptop.ok(&["folder", "add", pics.to_str().unwrap()]);
    laptop.ok(&["scan"]);
    laptop.ok(&["delete", "pics/a.jpg", "pics/b.jpg"]);
    let (_laptop_run, laptop_addr, page) = laptop.start_run_web("127.0.0.1:0");
    let base = format!("http://{page}");
    let in_trash = |node: &Node| node.json(&["trash", "list"])["versions"].as_u64().unwrap();

    let browser = Browser::start(1000, 1000);
    browser.go(&format!("{base}/trash"));
    let listed = browser.text("#trash");
    assert!(
        listed.contains("pics/a.jpg") && listed.contains("pics/b.jpg"),
        "{listed}"
    );
    browser.screenshot(&screenshot_path("trash"));
    // Restore a.jpg: it leaves the trash, here and in the CLI's view of the same home.
    browser.click("#trash tbody tr:first-child button");
    let left = browser.wait_text("#trash", "a.jpg restored", |t| !t.contains("a.jpg"));
    assert!(left.contains("pics/b.jpg"), "{left}");
    assert_eq!(in_trash(&laptop), 1);
    // Empty it: the page asks first and says it cannot be undone.
    browser.click("a.danger");
    assert!(browser.text("main").contains("cannot be undone"));
    browser.click("button.danger");
    browser.wait_text("#empty", "an empty trash", |t| t == "The trash is empty.");
    assert_eq!(in_trash(&laptop), 0);

    // A vault's page: counts only, no photo named, no thumbnails. (Renamed from the laptop's
    // command line first: the vault's page uses the new name.)
    let out = laptop.ok(&["rename", "vault", "Offsite vault"]);
    assert!(out.contains("\"Offsite vault\""), "{out}");
    let ambiguous = laptop.run(&["rename", "nobody", "x"]);
    assert_eq!(ambiguous.code, 2);
    assert!(
        ambiguous.stderr.contains("no member is called"),
        "{}",
        ambiguous.stderr
    );
    vault.ok(&["peer", "add", &laptop_addr]);
    let (_vault_run, _, vault_page) = vault.start_run_web("127.0.0.1:0");
    wait_until("the vault to hold the records", || {
        let records = vault.json(&["status"])["records"].as_u64().unwrap();
        let want = laptop.json(&["status"])["records"].as_u64().unwrap();
        if records == want {
            Ok(())
        } else {
            Err(format!("{records} of {want}"))
        }
    });
    browser.go(&format!("http://{vault_page}/"));
    browser.wait_text("h1", "the vault's new name", |t| t == "Offsite vault");
    let sentence = browser.text("#sentence");
    assert!(sentence.starts_with("This is a vault"), "{sentence}");
    browser.go(&format!("http://{vault_page}/photos"));
    let photos = browser.text("main");
    assert!(photos.contains("cannot read"), "{photos}");
    assert!(!photos.contains(".jpg"), "{photos}");
    assert!(browser.find_all("#grid img").is_empty());
    browser.go(&format!("http://{vault_page}/upload"));
    assert!(browser.text("main").contains("This device is a vault"));
    browser.screenshot(&screenshot_path("vault"));

    // `open --print` names the configured page.
    let config = laptop.home.join("config.toml");
    std::fs::write(&config, "[web]\nlisten = \"0.0.0.0:8471\"\n").unwrap();
    assert_eq!(
        laptop.ok(&["open", "--print"]).trim(),
        "http://127.0.0.1:8471/"
    );
    std::fs::write(&config, "[web]\nenabled = false\n").unwrap();
    let off = laptop.run(&["open"]);
    assert_eq!(off.code, 2);
    assert!(off.stderr.contains("enabled = false"), "{}", off.stderr);
}

#[test]
fn every_corpus_picture_of_a_drawn_kind_gets_a_thumbnail_or_a_reason() {
    use photomesh::library::thumbs::{self, ThumbError};
    let mut drawn = Vec::new();
    let mut refused = Vec::new();
    let mut stack = vec![photomesh_tests::corpus_files()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let kind = photomesh::library::media::type_from_extension(&path);
            if !thumbs::drawn(kind) {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            match thumbs::make(&bytes, kind) {
                Ok(jpeg) => {
                    assert!(jpeg.starts_with(&[0xff, 0xd8]), "{name}: not a JPEG");
                    drawn.push(name);
                }
                Err(e @ (ThumbError::Decode(_) | ThumbError::TooLarge)) => {
                    refused.push(format!("{name}: {e}"));
                }
                Err(e) => panic!("{name}: {e}"),
            }
        }
    }
    // Camera JPEGs, phone JPEGs with gain maps, the MPOs, the PNGs and the WebPs.
    for must in [
        "gexiv2-canon-g11.jpeg",
        "pillow-pixel6-ultrahdr.jpg",
        "libavif-iphone13mini-gainmap.jpg",
        "pillow-nintendo-3ds.mpo",
        "libavif-pixel4a-exif-chunk.png",
        "exiv2-nikon-d5300.webp",
        "pillow-canon-s40.webp",
    ] {
        assert!(drawn.iter().any(|d| d == must), "{must}: {refused:?}");
    }
    // Every one of the 24 draws today; a file that cannot (a metadata-only sample) must be
    // refused with a reason, never a panic.
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(drawn.len(), 24, "{drawn:?}");
}
