//! The index's schema: numbered migrations, run once each in a transaction.

/// The schema, one entry per version: entry `i` takes the index from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
    // Version 1.
    "
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE folders (
        label TEXT PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        added_at_ms INTEGER NOT NULL
    );
    -- Every sealed record this device holds: the replicated truth.
    CREATE TABLE records (
        record_id BLOB PRIMARY KEY,
        sealed BLOB NOT NULL,
        received_at_ms INTEGER NOT NULL
    );
    -- Query-friendly fields of the photo records this device can read.
    CREATE TABLE photos (
        record_id BLOB PRIMARY KEY REFERENCES records(record_id),
        folder TEXT NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        plaintext_hash BLOB NOT NULL,
        blob_id BLOB NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    CREATE INDEX photos_by_path ON photos(folder, path, created_at_ms);
    CREATE INDEX photos_by_blob ON photos(blob_id);
    -- Blobs known to this device, with their verification data; `stored` = in the blob store.
    CREATE TABLE blobs (
        blob_id BLOB PRIMARY KEY,
        sealed_len INTEGER NOT NULL,
        outboard BLOB NOT NULL,
        stored INTEGER NOT NULL DEFAULT 0
    );
    -- Original files in this device's folders, as last scanned.
    CREATE TABLE sources (
        folder TEXT NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_s INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        record_id BLOB NOT NULL REFERENCES records(record_id),
        PRIMARY KEY (folder, path)
    );
    CREATE TABLE scans (
        scan_id INTEGER PRIMARY KEY,
        started_at_ms INTEGER NOT NULL,
        finished_at_ms INTEGER,
        files_seen INTEGER NOT NULL DEFAULT 0,
        new_files INTEGER NOT NULL DEFAULT 0,
        changed_files INTEGER NOT NULL DEFAULT 0,
        unchanged_files INTEGER NOT NULL DEFAULT 0,
        missing_files INTEGER NOT NULL DEFAULT 0,
        bytes_read INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE scan_problems (
        scan_id INTEGER NOT NULL REFERENCES scans(scan_id),
        path TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    ",
    // Version 2: membership. Membership records live in `records` with the photo records
    // (they replicate the same way; they start with the bytes `pmmr`).
    "
    CREATE TABLE devices_seen (
        device_id BLOB PRIMARY KEY,
        last_seen_ms INTEGER NOT NULL,
        address TEXT,
        has_aes INTEGER
    );
    ",
    // Version 3: configured peers (addresses beyond the LAN, and for tests).
    "
    CREATE TABLE peers (
        address TEXT PRIMARY KEY,
        added_at_ms INTEGER NOT NULL
    );
    -- What each peer was last seen to hold (from the blob-set reconciliation with it).
    CREATE TABLE peer_blobs (
        device_id BLOB NOT NULL,
        blob_id BLOB NOT NULL,
        PRIMARY KEY (device_id, blob_id)
    ) WITHOUT ROWID;
    CREATE INDEX peer_blobs_by_blob ON peer_blobs(blob_id);
    -- Addresses of members that other members told this device about.
    CREATE TABLE learned_addresses (
        device_id BLOB PRIMARY KEY,
        address TEXT NOT NULL,
        learned_at_ms INTEGER NOT NULL
    );
    CREATE TABLE peer_sync (
        device_id BLOB PRIMARY KEY,
        synced_at_ms INTEGER NOT NULL
    );
    ",
    // Version 4: peers caught sending bad blob data, and who added each photo (for the
    // `own` hold policy).
    "
    CREATE TABLE bad_peers (
        device_id BLOB NOT NULL,
        at_ms INTEGER NOT NULL,
        blob_id BLOB NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE INDEX bad_peers_by_device ON bad_peers(device_id, at_ms);
    ALTER TABLE photos ADD COLUMN added_by BLOB;
    CREATE INDEX photos_by_adder ON photos(added_by);
    -- Serving an original looks its source up by record, once per blob.
    CREATE INDEX sources_by_record ON sources(record_id);
    ",
    // Version 5: the membership records (read each time the index changes, to reload the
    // trust set, and for every hello) through a partial index, not a scan of every record.
    "
    CREATE INDEX records_membership ON records(record_id) WHERE substr(sealed, 1, 4) = X'706d6d72';
    ",
    // Version 6: every file kept (kinds, what a scan left out), moves, and originals gone
    // from their folders.
    "
    ALTER TABLE scans ADD COLUMN details TEXT;
    ALTER TABLE photos ADD COLUMN media_type TEXT;
    -- A source whose file is no longer there (NULL: it is).
    ALTER TABLE sources ADD COLUMN gone_since_ms INTEGER;
    CREATE INDEX sources_gone ON sources(gone_since_ms) WHERE gone_since_ms IS NOT NULL;
    -- A new file's content is looked up among the recorded originals (is it one moved?).
    CREATE INDEX photos_by_hash ON photos(plaintext_hash);
    -- Move records: the photo at (folder, path) moved away at `at_ms`.
    CREATE TABLE moves (
        record_id BLOB PRIMARY KEY REFERENCES records(record_id),
        folder TEXT NOT NULL,
        path TEXT NOT NULL,
        at_ms INTEGER NOT NULL
    );
    CREATE INDEX moves_by_path ON moves(folder, path, at_ms);
    ",
    // Version 7: copies count when verified. When this device last verified each blob it
    // stores and each original against its record (0: not known; copies made before are not,
    // and the scrub starts a pass at once), and what each member says in its hello: since
    // when all it holds was verified, and its storage.
    "
    ALTER TABLE blobs ADD COLUMN verified_at_ms INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sources ADD COLUMN verified_at_ms INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX blobs_verified ON blobs(verified_at_ms) WHERE stored = 1;
    CREATE INDEX sources_verified ON sources(verified_at_ms) WHERE gone_since_ms IS NULL;
    -- An original found not to match its record although unchanged to the file system
    -- (rot): not held, and not taken back by a scan until it changes.
    ALTER TABLE sources ADD COLUMN damaged INTEGER NOT NULL DEFAULT 0;
    -- What each member last said in its hello of its checks and its storage.
    CREATE TABLE peer_reports (
        device_id BLOB PRIMARY KEY,
        verified_since_ms INTEGER,
        used INTEGER,
        free INTEGER,
        quota INTEGER,
        at_ms INTEGER NOT NULL
    );
    DELETE FROM meta WHERE key IN ('scrub_last_pass_ms', 'scrub_pass_started_ms', 'scrub_cursor');
    ",
    // Version 8: the trash. Lifecycle records (trash, restore, purge; `protocol/LIFECYCLE.md`)
    // live in `records` with the others, found through a partial index as membership records
    // are; `trash` holds what they say of each photo record they name (a function of them,
    // rewritten whenever one arrives or the members change).
    "
    CREATE INDEX records_lifecycle ON records(record_id) WHERE substr(sealed, 1, 4) = X'706d6c63';
    CREATE TABLE trash (
        record_id BLOB PRIMARY KEY,
        -- 1: purged for good; 0: in the trash since `since_ms`.
        purged INTEGER NOT NULL,
        since_ms INTEGER NOT NULL,
        -- The blob a vault may drop with it (NULL: shared with a photo still live).
        blob_id BLOB
    ) WITHOUT ROWID;
    ",
    // Version 9: originals released by `free-up-space`, their photos safe on other devices.
    // A released source is no longer there (`gone_since_ms` is set too, so it is not held,
    // served or scrubbed) but it is no loss: not listed as gone, not the origin of a move,
    // and taken back like any file when its content reappears at its path.
    "
    ALTER TABLE sources ADD COLUMN released_at_ms INTEGER;
    CREATE INDEX sources_released ON sources(folder, path) WHERE released_at_ms IS NOT NULL;
    ",
    // Version 10: which members released their original of which photo records (lifecycle
    // `Release` records, rewritten with the trash): other members count those photos safe at
    // `[storage] free_up_copies`.
    "
    CREATE TABLE released_by (
        record_id BLOB NOT NULL,
        device_id BLOB NOT NULL,
        PRIMARY KEY (record_id, device_id)
    ) WITHOUT ROWID;
    ",
];
