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
    // Version 11: fewer bytes per record (where they go: ARCHITECTURE.md, "Node: files and
    // storage"). `blobs` is keyed by the blob ID alone (WITHOUT ROWID: no rowid, and no
    // index holding every ID a second time); the outboards, kilobytes for a photo, are
    // apart in `outboards`, since SQLite's clustered tables suit small rows only. The
    // lookups by plaintext hash and by adder go through the first 8 bytes of the value
    // (queries compare those, then the whole value): about 18 bytes an entry, not 46 or 33.
    "
    CREATE TABLE blobs_by_id (
        blob_id BLOB PRIMARY KEY,
        sealed_len INTEGER NOT NULL,
        stored INTEGER NOT NULL DEFAULT 0,
        verified_at_ms INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    INSERT INTO blobs_by_id (blob_id, sealed_len, stored, verified_at_ms)
        SELECT blob_id, sealed_len, stored, verified_at_ms FROM blobs ORDER BY blob_id;
    -- The bao outboard of each blob over one chunk group; a smaller blob's is empty and has
    -- no row.
    CREATE TABLE outboards (
        blob_id BLOB PRIMARY KEY,
        outboard BLOB NOT NULL
    );
    INSERT INTO outboards (blob_id, outboard)
        SELECT blob_id, outboard FROM blobs WHERE length(outboard) > 0 ORDER BY blob_id;
    DROP TABLE blobs;
    ALTER TABLE blobs_by_id RENAME TO blobs;
    CREATE INDEX blobs_verified ON blobs(verified_at_ms) WHERE stored = 1;
    DROP INDEX photos_by_hash;
    CREATE INDEX photos_by_hash ON photos(substr(plaintext_hash, 1, 8));
    DROP INDEX photos_by_adder;
    CREATE INDEX photos_by_adder ON photos(substr(added_by, 1, 8));
    ",
    // Version 12: what `status` reports, kept as the index changes, so that it reads a few
    // small rows whatever the number of photos (`index/tallies.rs`). Each photo record has a
    // class: the facts `status` counts it by (the view `photo_attrs`). `photo_classes` holds
    // each class in use with its records and bytes; triggers refresh the class of every
    // record a change touches (through the view `photo_refresh`). `tallies`,
    // `folder_tallies` and `peer_tallies` count records, stored blobs, the sources there in
    // each folder, and the blobs each peer holds. Filled here for an existing index.
    "
    ALTER TABLE photos ADD COLUMN class INTEGER;
    -- When this device last checked its copy of the record's blob (NULL: it holds none).
    ALTER TABLE photos ADD COLUMN held_at INTEGER;
    -- The records of a class, those recorded after a time, those checked before one.
    CREATE INDEX photos_by_class ON photos(class, created_at_ms);
    CREATE INDEX photos_by_check ON photos(class, held_at);
    CREATE TABLE photo_classes (
        class INTEGER PRIMARY KEY,
        -- The record's facts, one bit each (`photo_attrs`; `tallies::Facts` reads them).
        facts INTEGER NOT NULL,
        -- Its media type ('': not yet known, a record indexed before kinds were kept).
        kind TEXT NOT NULL,
        -- Who added it (X'': not yet known).
        added_by BLOB NOT NULL,
        -- The other devices last seen holding its blob: their IDs in hex, in order.
        holders TEXT NOT NULL,
        photos INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        UNIQUE (facts, kind, added_by, holders)
    );
    -- When this device last checked its copy of a record's blob: the later of its stored
    -- copy's and its originals' checks (as `Index::held_verified_at`).
    CREATE VIEW photo_checks AS
    SELECT p.record_id,
        NULLIF(MAX(COALESCE((SELECT b.verified_at_ms FROM blobs b
                             WHERE b.blob_id = p.blob_id AND b.stored = 1), -1),
                   COALESCE((SELECT MAX(s.verified_at_ms)
                             FROM photos q JOIN sources s ON s.record_id = q.record_id
                             WHERE q.blob_id = p.blob_id AND s.gone_since_ms IS NULL), -1)),
               -1) AS held_at
    FROM photos p;
    -- A photo record's class, from one search of each table that says something of it.
    CREATE VIEW photo_attrs AS
    SELECT p.record_id, p.folder, p.path, p.blob_id, p.size,
        -- 1: in the trash (or purged).
        EXISTS (SELECT 1 FROM trash t WHERE t.record_id = p.record_id)
        -- 2: moved away from its path since it was made.
        + 2 * EXISTS (SELECT 1 FROM moves m WHERE m.folder = p.folder AND m.path = p.path
                                             AND m.at_ms >= p.created_at_ms)
        -- 4: the newest version at its path not in the trash; 8: a newer version is there.
        + (SELECT 4 * COALESCE(MAX(CASE WHEN NOT EXISTS (SELECT 1 FROM trash t
                                                          WHERE t.record_id = q.record_id)
                                         THEN q.created_at_ms END) = p.created_at_ms, 0)
                  + 8 * COALESCE(MAX(q.created_at_ms) > p.created_at_ms, 0)
           FROM photos q WHERE q.folder = p.folder AND q.path = p.path)
        -- 16: the first record (by ID) of its blob; 32: the first its adder added.
        + (SELECT 16 * (NOT COALESCE(MAX(q.record_id < p.record_id), 0))
                  + 32 * (NOT COALESCE(MAX(q.record_id < p.record_id
                                           AND +q.added_by IS p.added_by), 0))
           FROM photos q WHERE q.blob_id = p.blob_id)
        -- 64: its blob is stored here.
        + 64 * EXISTS (SELECT 1 FROM blobs b WHERE b.blob_id = p.blob_id AND b.stored = 1)
        -- 128: an original of its blob is there; 256: one was released (`free-up-space`).
        + COALESCE((SELECT 128 * MAX(s.gone_since_ms IS NULL)
                           + 256 * MAX(s.released_at_ms IS NOT NULL)
                    FROM photos q JOIN sources s ON s.record_id = q.record_id
                    WHERE q.blob_id = p.blob_id), 0)
        -- Its own original here: 512 released, 1024 there, 2048 gone or damaged.
        + COALESCE((SELECT 512 * MAX(s.released_at_ms IS NOT NULL)
                           + 1024 * MAX(s.gone_since_ms IS NULL)
                           + 2048 * MAX(s.gone_since_ms IS NOT NULL
                                        AND s.released_at_ms IS NULL)
                    FROM sources s WHERE s.record_id = p.record_id), 0)
        -- 4096: a member released its original.
        + 4096 * EXISTS (SELECT 1 FROM released_by r WHERE r.record_id = p.record_id)
          AS facts,
        COALESCE(p.media_type, '') AS kind,
        COALESCE(p.added_by, X'') AS added_by,
        COALESCE((SELECT string_agg(hex(h.device_id), ' ' ORDER BY h.device_id)
                  FROM peer_blobs h WHERE h.blob_id = p.blob_id), '') AS holders,
        (SELECT c.held_at FROM photo_checks c WHERE c.record_id = p.record_id) AS held_at
    FROM photos p;
    -- Inserting a record's attributes here moves it from its class to the one they make.
    CREATE VIEW photo_refresh AS SELECT * FROM photo_attrs WHERE 0;
    CREATE TRIGGER photo_refresh INSTEAD OF INSERT ON photo_refresh BEGIN
        UPDATE photo_classes SET photos = photos - 1, bytes = bytes - NEW.size
        WHERE class = (SELECT class FROM photos WHERE record_id = NEW.record_id);
        INSERT INTO photo_classes (facts, kind, added_by, holders, photos, bytes)
        VALUES (NEW.facts, NEW.kind, NEW.added_by, NEW.holders, 1, NEW.size)
        ON CONFLICT (facts, kind, added_by, holders)
        DO UPDATE SET photos = photos + 1, bytes = bytes + excluded.bytes;
        UPDATE photos SET class = (SELECT class FROM photo_classes
            WHERE facts = NEW.facts AND kind = NEW.kind AND added_by = NEW.added_by
              AND holders = NEW.holders),
          held_at = NEW.held_at
        WHERE record_id = NEW.record_id;
    END;
    -- A class left empty goes.
    CREATE TRIGGER photo_classes_empty AFTER UPDATE OF photos ON photo_classes
    WHEN NEW.photos = 0 BEGIN
        DELETE FROM photo_classes WHERE class = NEW.class;
    END;
    -- A new version, a new path, a new record of a blob: the versions at its path and the
    -- records of its blob.
    CREATE TRIGGER photos_class_insert AFTER INSERT ON photos BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE folder = NEW.folder AND path = NEW.path OR blob_id = NEW.blob_id;
    END;
    CREATE TRIGGER photos_class_update AFTER UPDATE OF media_type, added_by ON photos BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs WHERE blob_id = NEW.blob_id;
    END;
    CREATE TRIGGER photos_class_delete AFTER DELETE ON photos BEGIN
        UPDATE photo_classes SET photos = photos - 1, bytes = bytes - OLD.size
        WHERE class = OLD.class;
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE folder = OLD.folder AND path = OLD.path OR blob_id = OLD.blob_id;
    END;
    -- In or out of the trash, moved away: the versions at the path.
    CREATE TRIGGER trash_class_insert AFTER INSERT ON trash BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE (folder, path) = (SELECT folder, path FROM photos WHERE record_id = NEW.record_id);
    END;
    CREATE TRIGGER trash_class_delete AFTER DELETE ON trash BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE (folder, path) = (SELECT folder, path FROM photos WHERE record_id = OLD.record_id);
    END;
    CREATE TRIGGER moves_class_insert AFTER INSERT ON moves BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE folder = NEW.folder AND path = NEW.path;
    END;
    CREATE TRIGGER moves_class_delete AFTER DELETE ON moves BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE folder = OLD.folder AND path = OLD.path;
    END;
    -- An original here recorded, gone, back or released: the records of its blob.
    CREATE TRIGGER sources_class_insert AFTER INSERT ON sources BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE blob_id = (SELECT blob_id FROM photos WHERE record_id = NEW.record_id);
    END;
    CREATE TRIGGER sources_class_update
    AFTER UPDATE OF record_id, gone_since_ms, released_at_ms ON sources
    WHEN OLD.record_id IS NOT NEW.record_id
      OR (OLD.gone_since_ms IS NULL) IS NOT (NEW.gone_since_ms IS NULL)
      OR (OLD.released_at_ms IS NULL) IS NOT (NEW.released_at_ms IS NULL) BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE blob_id IN (SELECT blob_id FROM photos
                          WHERE record_id IN (OLD.record_id, NEW.record_id));
    END;
    CREATE TRIGGER sources_class_delete AFTER DELETE ON sources BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE blob_id = (SELECT blob_id FROM photos WHERE record_id = OLD.record_id);
    END;
    -- A blob stored or no longer, held or no longer by a peer: the records of the blob.
    CREATE TRIGGER blobs_class_insert AFTER INSERT ON blobs WHEN NEW.stored BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs WHERE blob_id = NEW.blob_id;
    END;
    CREATE TRIGGER blobs_class_update AFTER UPDATE OF stored ON blobs
    WHEN OLD.stored IS NOT NEW.stored BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs WHERE blob_id = NEW.blob_id;
    END;
    CREATE TRIGGER blobs_class_delete AFTER DELETE ON blobs WHEN OLD.stored BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs WHERE blob_id = OLD.blob_id;
    END;
    CREATE TRIGGER peer_blobs_class_insert AFTER INSERT ON peer_blobs BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs WHERE blob_id = NEW.blob_id;
    END;
    CREATE TRIGGER peer_blobs_class_delete AFTER DELETE ON peer_blobs BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs WHERE blob_id = OLD.blob_id;
    END;
    -- A copy here checked again (by the scrub, `verify`, a scan): when its records' blob was.
    CREATE TRIGGER blobs_checked AFTER UPDATE OF verified_at_ms ON blobs
    WHEN NEW.stored AND OLD.verified_at_ms IS NOT NEW.verified_at_ms BEGIN
        UPDATE photos SET held_at = (SELECT c.held_at FROM photo_checks c
                                     WHERE c.record_id = photos.record_id)
        WHERE blob_id = NEW.blob_id;
    END;
    CREATE TRIGGER sources_checked AFTER UPDATE OF verified_at_ms ON sources
    WHEN NEW.gone_since_ms IS NULL AND OLD.verified_at_ms IS NOT NEW.verified_at_ms BEGIN
        UPDATE photos SET held_at = (SELECT c.held_at FROM photo_checks c
                                     WHERE c.record_id = photos.record_id)
        WHERE blob_id = (SELECT blob_id FROM photos WHERE record_id = NEW.record_id);
    END;
    -- A member's release, or its return.
    CREATE TRIGGER released_by_class_insert AFTER INSERT ON released_by BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs WHERE record_id = NEW.record_id;
    END;
    CREATE TRIGGER released_by_class_delete AFTER DELETE ON released_by BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs WHERE record_id = OLD.record_id;
    END;
    -- 'records': every record; 'stored': the blobs stored, and their sealed bytes.
    CREATE TABLE tallies (
        name TEXT PRIMARY KEY,
        n INTEGER NOT NULL,
        bytes INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO tallies SELECT 'records', COUNT(*), 0 FROM records;
    INSERT INTO tallies SELECT 'stored', COUNT(*), COALESCE(SUM(sealed_len), 0)
        FROM blobs WHERE stored = 1;
    CREATE TRIGGER records_tally_insert AFTER INSERT ON records BEGIN
        UPDATE tallies SET n = n + 1 WHERE name = 'records';
    END;
    CREATE TRIGGER records_tally_delete AFTER DELETE ON records BEGIN
        UPDATE tallies SET n = n - 1 WHERE name = 'records';
    END;
    CREATE TRIGGER blobs_tally_insert AFTER INSERT ON blobs WHEN NEW.stored BEGIN
        UPDATE tallies SET n = n + 1, bytes = bytes + NEW.sealed_len WHERE name = 'stored';
    END;
    CREATE TRIGGER blobs_tally_update AFTER UPDATE OF stored, sealed_len ON blobs BEGIN
        UPDATE tallies
        SET n = n + (NEW.stored != 0) - (OLD.stored != 0),
            bytes = bytes + (NEW.stored != 0) * NEW.sealed_len
                          - (OLD.stored != 0) * OLD.sealed_len
        WHERE name = 'stored';
    END;
    CREATE TRIGGER blobs_tally_delete AFTER DELETE ON blobs WHEN OLD.stored BEGIN
        UPDATE tallies SET n = n - 1, bytes = bytes - OLD.sealed_len WHERE name = 'stored';
    END;
    -- The sources of each folder that are there, and their bytes.
    CREATE TABLE folder_tallies (
        folder TEXT PRIMARY KEY,
        photos INTEGER NOT NULL,
        bytes INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO folder_tallies
        SELECT folder, SUM(gone_since_ms IS NULL),
               SUM(CASE WHEN gone_since_ms IS NULL THEN size ELSE 0 END)
        FROM sources GROUP BY folder;
    CREATE TRIGGER sources_tally_insert AFTER INSERT ON sources BEGIN
        INSERT INTO folder_tallies (folder, photos, bytes)
        VALUES (NEW.folder, NEW.gone_since_ms IS NULL,
                CASE WHEN NEW.gone_since_ms IS NULL THEN NEW.size ELSE 0 END)
        ON CONFLICT (folder) DO UPDATE SET photos = photos + excluded.photos,
                                           bytes = bytes + excluded.bytes;
    END;
    CREATE TRIGGER sources_tally_update AFTER UPDATE OF folder, size, gone_since_ms ON sources
    BEGIN
        UPDATE folder_tallies
        SET photos = photos - (OLD.gone_since_ms IS NULL),
            bytes = bytes - CASE WHEN OLD.gone_since_ms IS NULL THEN OLD.size ELSE 0 END
        WHERE folder = OLD.folder;
        INSERT INTO folder_tallies (folder, photos, bytes)
        VALUES (NEW.folder, NEW.gone_since_ms IS NULL,
                CASE WHEN NEW.gone_since_ms IS NULL THEN NEW.size ELSE 0 END)
        ON CONFLICT (folder) DO UPDATE SET photos = photos + excluded.photos,
                                           bytes = bytes + excluded.bytes;
    END;
    CREATE TRIGGER sources_tally_delete AFTER DELETE ON sources BEGIN
        UPDATE folder_tallies
        SET photos = photos - (OLD.gone_since_ms IS NULL),
            bytes = bytes - CASE WHEN OLD.gone_since_ms IS NULL THEN OLD.size ELSE 0 END
        WHERE folder = OLD.folder;
    END;
    -- The blobs each peer was last seen holding.
    CREATE TABLE peer_tallies (
        device_id BLOB PRIMARY KEY,
        blobs INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO peer_tallies SELECT device_id, COUNT(*) FROM peer_blobs GROUP BY device_id;
    CREATE TRIGGER peer_blobs_tally_insert AFTER INSERT ON peer_blobs BEGIN
        INSERT INTO peer_tallies (device_id, blobs) VALUES (NEW.device_id, 1)
        ON CONFLICT (device_id) DO UPDATE SET blobs = blobs + 1;
    END;
    CREATE TRIGGER peer_blobs_tally_delete AFTER DELETE ON peer_blobs BEGIN
        UPDATE peer_tallies SET blobs = blobs - 1 WHERE device_id = OLD.device_id;
    END;
    -- The gone originals `status` lists, first gone first, without stepping over released
    -- ones (which `sources_gone` also held).
    DROP INDEX IF EXISTS sources_gone;
    CREATE INDEX sources_lost ON sources(gone_since_ms)
        WHERE gone_since_ms IS NOT NULL AND released_at_ms IS NULL;
    -- Every photo record into its class.
    INSERT INTO photo_refresh SELECT * FROM photo_attrs;
    ",
    // Version 13: a photo record this device opened is kept once (`index/stored.rs`): the
    // fields of `photos` below, with these, seal it again byte for byte, and its row in
    // `records` keeps an empty `sealed`. Rows indexed before keep their sealed bytes.
    "
    ALTER TABLE photos ADD COLUMN mtime_s INTEGER;
    ALTER TABLE photos ADD COLUMN mtime_ns INTEGER;
    -- When it was taken (NULL: the file does not say), and the camera's UTC offset.
    ALTER TABLE photos ADD COLUMN capture_s INTEGER;
    ALTER TABLE photos ADD COLUMN capture_offset INTEGER;
    ALTER TABLE photos ADD COLUMN blob_epoch INTEGER;
    -- The key epoch that sealed the record.
    ALTER TABLE photos ADD COLUMN seal_epoch INTEGER;
    ",
    // Version 14: fewer bytes per record (where they go: ARCHITECTURE.md, "Node: files and
    // storage"). The fields of a photo record are keyed by its row in `records`
    // (`photo_rows.rid`), not by its ID a second time with an index of its own; a source
    // file is kept as the photo row of its record (whose folder, path, size and ID are the
    // file's) and what a scan saw of the file (`source_files.photo`), not as its path, its
    // record's ID and two indexes on them. Neither key changes: rows are never deleted and
    // nothing runs VACUUM. The views `photos` and `sources` read as the tables did; writes go
    // to `photo_rows` and `source_files`. A source whose record is not a photo at its path
    // (none was written so) is dropped: the next scan finds its file and links it again.
    "
    CREATE TABLE photo_rows (
        rid INTEGER PRIMARY KEY,
        folder TEXT NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        plaintext_hash BLOB NOT NULL,
        blob_id BLOB NOT NULL,
        created_at_ms INTEGER NOT NULL,
        added_by BLOB,
        media_type TEXT,
        class INTEGER,
        held_at INTEGER,
        mtime_s INTEGER,
        mtime_ns INTEGER,
        capture_s INTEGER,
        capture_offset INTEGER,
        blob_epoch INTEGER,
        seal_epoch INTEGER
    );
    INSERT INTO photo_rows
        SELECT r.rowid, p.folder, p.path, p.size, p.plaintext_hash, p.blob_id, p.created_at_ms,
               p.added_by, p.media_type, p.class, p.held_at, p.mtime_s, p.mtime_ns, p.capture_s,
               p.capture_offset, p.blob_epoch, p.seal_epoch
        FROM photos p JOIN records r USING (record_id) ORDER BY r.rowid;
    CREATE TABLE source_files (
        photo INTEGER PRIMARY KEY,
        mtime_s INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        gone_since_ms INTEGER,
        verified_at_ms INTEGER NOT NULL DEFAULT 0,
        damaged INTEGER NOT NULL DEFAULT 0,
        released_at_ms INTEGER
    );
    INSERT INTO source_files
        SELECT r.rowid, s.mtime_s, s.mtime_ns, s.inode, s.gone_since_ms, s.verified_at_ms,
               s.damaged, s.released_at_ms
        FROM sources s JOIN photos p USING (record_id) JOIN records r USING (record_id)
        WHERE p.folder = s.folder AND p.path = s.path
        ORDER BY r.rowid;
    -- The blobs whose classes change with the sources dropped.
    CREATE TEMP TABLE dropped_sources AS
        SELECT p.blob_id FROM sources s JOIN photos p USING (record_id)
        WHERE p.folder IS NOT s.folder OR p.path IS NOT s.path;
    DROP VIEW photo_checks;
    DROP VIEW photo_attrs;
    DROP TRIGGER photo_refresh;
    DROP TRIGGER blobs_checked;
    DROP TABLE sources;
    DROP TABLE photos;
    CREATE VIEW photos AS
    SELECT r.record_id, p.rid, p.folder, p.path, p.size, p.plaintext_hash, p.blob_id,
           p.created_at_ms, p.added_by, p.media_type, p.class, p.held_at, p.mtime_s,
           p.mtime_ns, p.capture_s, p.capture_offset, p.blob_epoch, p.seal_epoch
    FROM photo_rows p JOIN records r ON r.rowid = p.rid;
    CREATE VIEW sources AS
    SELECT p.folder, p.path, p.size, s.mtime_s, s.mtime_ns, s.inode, r.record_id,
           s.gone_since_ms, s.verified_at_ms, s.damaged, s.released_at_ms, s.photo
    FROM source_files s JOIN photo_rows p ON p.rid = s.photo JOIN records r ON r.rowid = s.photo;
    -- The indexes of version 12 and before, on the new tables, but `photos_by_adder`: the
    -- photos a device added are those of the classes it added (`records::ADDED_BY`).
    CREATE INDEX photos_by_path ON photo_rows(folder, path, created_at_ms);
    CREATE INDEX photos_by_blob ON photo_rows(substr(blob_id, 1, 8));
    CREATE INDEX photos_by_hash ON photo_rows(substr(plaintext_hash, 1, 8));
    CREATE INDEX photos_by_class ON photo_rows(class, created_at_ms);
    CREATE INDEX photos_by_check ON photo_rows(class, held_at);
    CREATE INDEX sources_verified ON source_files(verified_at_ms) WHERE gone_since_ms IS NULL;
    CREATE INDEX sources_lost ON source_files(gone_since_ms)
        WHERE gone_since_ms IS NOT NULL AND released_at_ms IS NULL;
    CREATE INDEX sources_released ON source_files(released_at_ms)
        WHERE released_at_ms IS NOT NULL;
    -- The views and triggers of version 12, on the new tables: a photo's record ID is read
    -- from `records` where it counts (the trash, the first record of a blob).
    CREATE VIEW photo_checks AS
    SELECT p.rid,
        NULLIF(MAX(COALESCE((SELECT b.verified_at_ms FROM blobs b
                             WHERE b.blob_id = p.blob_id AND b.stored = 1), -1),
                   COALESCE((SELECT MAX(s.verified_at_ms)
                             FROM photo_rows q JOIN source_files s ON s.photo = q.rid
                             WHERE substr(q.blob_id, 1, 8) = substr(p.blob_id, 1, 8)
                               AND q.blob_id = p.blob_id AND s.gone_since_ms IS NULL), -1)),
               -1) AS held_at
    FROM photo_rows p;
    CREATE VIEW photo_attrs AS
    SELECT r.record_id, p.folder, p.path, p.blob_id, p.size,
        EXISTS (SELECT 1 FROM trash t WHERE t.record_id = r.record_id)
        + 2 * EXISTS (SELECT 1 FROM moves m WHERE m.folder = p.folder AND m.path = p.path
                                             AND m.at_ms >= p.created_at_ms)
        + (SELECT 4 * COALESCE(MAX(CASE WHEN NOT EXISTS (SELECT 1 FROM trash t
                                                          WHERE t.record_id = rq.record_id)
                                         THEN q.created_at_ms END) = p.created_at_ms, 0)
                  + 8 * COALESCE(MAX(q.created_at_ms) > p.created_at_ms, 0)
           FROM photo_rows q JOIN records rq ON rq.rowid = q.rid
           WHERE q.folder = p.folder AND q.path = p.path)
        + (SELECT 16 * (NOT COALESCE(MAX(rq.record_id < r.record_id), 0))
                  + 32 * (NOT COALESCE(MAX(rq.record_id < r.record_id
                                           AND +q.added_by IS p.added_by), 0))
           FROM photo_rows q JOIN records rq ON rq.rowid = q.rid
           WHERE substr(q.blob_id, 1, 8) = substr(p.blob_id, 1, 8) AND q.blob_id = p.blob_id)
        + 64 * EXISTS (SELECT 1 FROM blobs b WHERE b.blob_id = p.blob_id AND b.stored = 1)
        + COALESCE((SELECT 128 * MAX(s.gone_since_ms IS NULL)
                           + 256 * MAX(s.released_at_ms IS NOT NULL)
                    FROM photo_rows q JOIN source_files s ON s.photo = q.rid
                    WHERE substr(q.blob_id, 1, 8) = substr(p.blob_id, 1, 8)
                      AND q.blob_id = p.blob_id), 0)
        + COALESCE((SELECT 512 * MAX(s.released_at_ms IS NOT NULL)
                           + 1024 * MAX(s.gone_since_ms IS NULL)
                           + 2048 * MAX(s.gone_since_ms IS NOT NULL
                                        AND s.released_at_ms IS NULL)
                    FROM source_files s WHERE s.photo = p.rid), 0)
        + 4096 * EXISTS (SELECT 1 FROM released_by x WHERE x.record_id = r.record_id)
          AS facts,
        COALESCE(p.media_type, '') AS kind,
        COALESCE(p.added_by, X'') AS added_by,
        COALESCE((SELECT string_agg(hex(h.device_id), ' ' ORDER BY h.device_id)
                  FROM peer_blobs h WHERE h.blob_id = p.blob_id), '') AS holders,
        (SELECT c.held_at FROM photo_checks c WHERE c.rid = p.rid) AS held_at,
        p.rid
    FROM photo_rows p JOIN records r ON r.rowid = p.rid;
    CREATE TRIGGER photo_refresh INSTEAD OF INSERT ON photo_refresh BEGIN
        UPDATE photo_classes SET photos = photos - 1, bytes = bytes - NEW.size
        WHERE class = (SELECT class FROM photo_rows WHERE rid = NEW.rid);
        INSERT INTO photo_classes (facts, kind, added_by, holders, photos, bytes)
        VALUES (NEW.facts, NEW.kind, NEW.added_by, NEW.holders, 1, NEW.size)
        ON CONFLICT (facts, kind, added_by, holders)
        DO UPDATE SET photos = photos + 1, bytes = bytes + excluded.bytes;
        UPDATE photo_rows SET class = (SELECT class FROM photo_classes
            WHERE facts = NEW.facts AND kind = NEW.kind AND added_by = NEW.added_by
              AND holders = NEW.holders),
          held_at = NEW.held_at
        WHERE rid = NEW.rid;
    END;
    CREATE TRIGGER photos_class_insert AFTER INSERT ON photo_rows BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE folder = NEW.folder AND path = NEW.path
           OR substr(blob_id, 1, 8) = substr(NEW.blob_id, 1, 8) AND blob_id = NEW.blob_id;
    END;
    CREATE TRIGGER photos_class_update AFTER UPDATE OF media_type, added_by ON photo_rows BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE substr(blob_id, 1, 8) = substr(NEW.blob_id, 1, 8) AND blob_id = NEW.blob_id;
    END;
    -- The triggers of version 12 that find a blob's records, through the prefix.
    DROP TRIGGER blobs_class_insert;
    DROP TRIGGER blobs_class_update;
    DROP TRIGGER blobs_class_delete;
    DROP TRIGGER peer_blobs_class_insert;
    DROP TRIGGER peer_blobs_class_delete;
    CREATE TRIGGER blobs_class_insert AFTER INSERT ON blobs WHEN NEW.stored BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE substr(blob_id, 1, 8) = substr(NEW.blob_id, 1, 8) AND blob_id = NEW.blob_id;
    END;
    CREATE TRIGGER blobs_class_update AFTER UPDATE OF stored ON blobs
    WHEN OLD.stored IS NOT NEW.stored BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE substr(blob_id, 1, 8) = substr(NEW.blob_id, 1, 8) AND blob_id = NEW.blob_id;
    END;
    CREATE TRIGGER blobs_class_delete AFTER DELETE ON blobs WHEN OLD.stored BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE substr(blob_id, 1, 8) = substr(OLD.blob_id, 1, 8) AND blob_id = OLD.blob_id;
    END;
    CREATE TRIGGER peer_blobs_class_insert AFTER INSERT ON peer_blobs BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE substr(blob_id, 1, 8) = substr(NEW.blob_id, 1, 8) AND blob_id = NEW.blob_id;
    END;
    CREATE TRIGGER peer_blobs_class_delete AFTER DELETE ON peer_blobs BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE substr(blob_id, 1, 8) = substr(OLD.blob_id, 1, 8) AND blob_id = OLD.blob_id;
    END;
    CREATE TRIGGER photos_class_delete AFTER DELETE ON photo_rows BEGIN
        UPDATE photo_classes SET photos = photos - 1, bytes = bytes - OLD.size
        WHERE class = OLD.class;
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE folder = OLD.folder AND path = OLD.path
           OR substr(blob_id, 1, 8) = substr(OLD.blob_id, 1, 8) AND blob_id = OLD.blob_id;
    END;
    CREATE TRIGGER blobs_checked AFTER UPDATE OF verified_at_ms ON blobs
    WHEN NEW.stored AND OLD.verified_at_ms IS NOT NEW.verified_at_ms BEGIN
        UPDATE photo_rows SET held_at = (SELECT c.held_at FROM photo_checks c
                                         WHERE c.rid = photo_rows.rid)
        WHERE substr(blob_id, 1, 8) = substr(NEW.blob_id, 1, 8) AND blob_id = NEW.blob_id;
    END;
    CREATE TRIGGER sources_checked AFTER UPDATE OF verified_at_ms ON source_files
    WHEN NEW.gone_since_ms IS NULL AND OLD.verified_at_ms IS NOT NEW.verified_at_ms BEGIN
        UPDATE photo_rows SET held_at = (SELECT c.held_at FROM photo_checks c
                                         WHERE c.rid = photo_rows.rid)
        WHERE substr(blob_id, 1, 8) = (SELECT substr(blob_id, 1, 8) FROM photo_rows
                                       WHERE rid = NEW.photo)
          AND blob_id = (SELECT blob_id FROM photo_rows WHERE rid = NEW.photo);
    END;
    CREATE TRIGGER sources_class_insert AFTER INSERT ON source_files BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE substr(blob_id, 1, 8) = (SELECT substr(blob_id, 1, 8) FROM photo_rows
                                       WHERE rid = NEW.photo)
          AND blob_id = (SELECT blob_id FROM photo_rows WHERE rid = NEW.photo);
    END;
    CREATE TRIGGER sources_class_update
    AFTER UPDATE OF photo, gone_since_ms, released_at_ms ON source_files
    WHEN OLD.photo IS NOT NEW.photo
      OR (OLD.gone_since_ms IS NULL) IS NOT (NEW.gone_since_ms IS NULL)
      OR (OLD.released_at_ms IS NULL) IS NOT (NEW.released_at_ms IS NULL) BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE substr(blob_id, 1, 8) IN (SELECT substr(blob_id, 1, 8) FROM photo_rows
                                        WHERE rid IN (OLD.photo, NEW.photo))
          AND blob_id IN (SELECT blob_id FROM photo_rows WHERE rid IN (OLD.photo, NEW.photo));
    END;
    CREATE TRIGGER sources_class_delete AFTER DELETE ON source_files BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs
        WHERE substr(blob_id, 1, 8) = (SELECT substr(blob_id, 1, 8) FROM photo_rows
                                       WHERE rid = OLD.photo)
          AND blob_id = (SELECT blob_id FROM photo_rows WHERE rid = OLD.photo);
    END;
    CREATE TRIGGER sources_tally_insert AFTER INSERT ON source_files BEGIN
        INSERT INTO folder_tallies (folder, photos, bytes)
        SELECT folder, NEW.gone_since_ms IS NULL,
               CASE WHEN NEW.gone_since_ms IS NULL THEN size ELSE 0 END
        FROM photo_rows WHERE rid = NEW.photo
        ON CONFLICT (folder) DO UPDATE SET photos = photos + excluded.photos,
                                           bytes = bytes + excluded.bytes;
    END;
    CREATE TRIGGER sources_tally_update AFTER UPDATE OF photo, gone_since_ms ON source_files
    BEGIN
        UPDATE folder_tallies
        SET photos = photos - (OLD.gone_since_ms IS NULL),
            bytes = bytes - CASE WHEN OLD.gone_since_ms IS NULL
                                 THEN (SELECT size FROM photo_rows WHERE rid = OLD.photo)
                                 ELSE 0 END
        WHERE folder = (SELECT folder FROM photo_rows WHERE rid = OLD.photo);
        INSERT INTO folder_tallies (folder, photos, bytes)
        SELECT folder, NEW.gone_since_ms IS NULL,
               CASE WHEN NEW.gone_since_ms IS NULL THEN size ELSE 0 END
        FROM photo_rows WHERE rid = NEW.photo
        ON CONFLICT (folder) DO UPDATE SET photos = photos + excluded.photos,
                                           bytes = bytes + excluded.bytes;
    END;
    CREATE TRIGGER sources_tally_delete AFTER DELETE ON source_files BEGIN
        UPDATE folder_tallies
        SET photos = photos - (OLD.gone_since_ms IS NULL),
            bytes = bytes - CASE WHEN OLD.gone_since_ms IS NULL
                                 THEN (SELECT size FROM photo_rows WHERE rid = OLD.photo)
                                 ELSE 0 END
        WHERE folder = (SELECT folder FROM photo_rows WHERE rid = OLD.photo);
    END;
    -- What the dropped sources changed.
    INSERT INTO photo_refresh SELECT * FROM photo_attrs
    WHERE substr(blob_id, 1, 8) IN (SELECT substr(blob_id, 1, 8) FROM temp.dropped_sources)
      AND blob_id IN (SELECT blob_id FROM temp.dropped_sources);
    DROP TABLE temp.dropped_sources;
    DELETE FROM folder_tallies;
    INSERT INTO folder_tallies
        SELECT folder, SUM(gone_since_ms IS NULL),
               SUM(CASE WHEN gone_since_ms IS NULL THEN size ELSE 0 END)
        FROM sources GROUP BY folder;
    ",
    // Version 15: a blob stored here or not, held by one more or one fewer peer, changes one
    // fact of its records' classes: the stored bit, or the holders. The triggers for those
    // changes take the other facts from the class each record is in (kept current by every
    // other trigger) instead of working them all out again through `photo_attrs`, a dozen
    // searches a record. Replication does both for every blob, on both ends.
    "
    DROP TRIGGER blobs_class_insert;
    DROP TRIGGER blobs_class_update;
    DROP TRIGGER blobs_class_delete;
    DROP TRIGGER peer_blobs_class_insert;
    DROP TRIGGER peer_blobs_class_delete;
    -- The records of each blob as `photo_attrs` has them, with the stored bit and the holders
    -- as they are now and every other fact from the record's class.
    CREATE VIEW photo_attrs_changed AS
    SELECT NULL AS record_id, p.folder, p.path, p.blob_id, p.size,
        (c.facts & ~64) + 64 * EXISTS (SELECT 1 FROM blobs b
                                       WHERE b.blob_id = p.blob_id AND b.stored = 1) AS facts,
        c.kind, c.added_by,
        COALESCE((SELECT string_agg(hex(h.device_id), ' ' ORDER BY h.device_id)
                  FROM peer_blobs h WHERE h.blob_id = p.blob_id), '') AS holders,
        (SELECT k.held_at FROM photo_checks k WHERE k.rid = p.rid) AS held_at,
        p.rid
    FROM photo_rows p JOIN photo_classes c ON c.class = p.class;
    CREATE TRIGGER blobs_class_insert AFTER INSERT ON blobs WHEN NEW.stored BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs_changed
        WHERE substr(blob_id, 1, 8) = substr(NEW.blob_id, 1, 8) AND blob_id = NEW.blob_id;
    END;
    CREATE TRIGGER blobs_class_update AFTER UPDATE OF stored ON blobs
    WHEN OLD.stored IS NOT NEW.stored BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs_changed
        WHERE substr(blob_id, 1, 8) = substr(NEW.blob_id, 1, 8) AND blob_id = NEW.blob_id;
    END;
    CREATE TRIGGER blobs_class_delete AFTER DELETE ON blobs WHEN OLD.stored BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs_changed
        WHERE substr(blob_id, 1, 8) = substr(OLD.blob_id, 1, 8) AND blob_id = OLD.blob_id;
    END;
    CREATE TRIGGER peer_blobs_class_insert AFTER INSERT ON peer_blobs BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs_changed
        WHERE substr(blob_id, 1, 8) = substr(NEW.blob_id, 1, 8) AND blob_id = NEW.blob_id;
    END;
    CREATE TRIGGER peer_blobs_class_delete AFTER DELETE ON peer_blobs BEGIN
        INSERT INTO photo_refresh SELECT * FROM photo_attrs_changed
        WHERE substr(blob_id, 1, 8) = substr(OLD.blob_id, 1, 8) AND blob_id = OLD.blob_id;
    END;
    ",
];
