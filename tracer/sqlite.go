package tracer

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// SQLite is the embedded Store: one database file in WAL mode with
// synchronous=NORMAL (a crash of the process loses nothing; a crash of the
// machine may lose the last transactions, which the pipeline's outbox does
// not cover either). Writes are idempotent on the event id (INSERT OR IGNORE)
// and each chunk of a Write is one transaction (see Write).
type SQLite struct {
	db    *sql.DB
	wmu   sync.Mutex // guards the write connection; readers go in parallel under WAL
	wconn *sql.Conn  // the one connection writes use, so the prepared INSERTs stay valid
	// inserts[k] inserts 1<<k rows; prepared once on wconn. A batch is
	// written as runs of 64 rows and then the binary digits of the rest, so
	// no INSERT is ever parsed on the write path.
	inserts [sqliteInsertShift + 1]*sql.Stmt

	closeOnce sync.Once
	closeErr  error
}

var _ Store = (*SQLite)(nil)

// sqliteSchemaVersion is kept in PRAGMA user_version. Version 1 (no
// user_version) had a rowid table, a unique text id and five secondary
// indexes; version 2 the table below with an index on (topic) alone.
// OpenSQLite migrates both in place (migrateSQLite). See ADR 020.
const sqliteSchemaVersion = 3

// The events table is clustered on (ts, id): events arrive roughly in time
// order, so inserts append to the right edge of the table's b-tree instead
// of landing at random places in a unique index on a hashed id. The id is
// derived from the time among other fields (ComputeID), so (ts, id) is as
// unique as id, and INSERT OR IGNORE on the key keeps writes idempotent.
// Every secondary index of a WITHOUT ROWID table carries the key, so
// (uid) is in effect (uid, ts, id): each query's ORDER BY ts, id comes from
// the index. message_id and key are empty on many events (accepted events
// have no broker id, many messages no key): their indexes leave those rows
// out. No index on ts alone: the table itself is in time order. The topic
// index also carries the uid (schema version 3): a grouped search of a
// topic's time window (SearchMessages) reads the uids from the index alone
// instead of looking every event of the window up in the table, and
// (topic, ts, id) still serves ByTopic's order.
const sqliteSchema = `
CREATE TABLE IF NOT EXISTS events (
	ts           INTEGER NOT NULL, -- microseconds since the Unix epoch
	id           BLOB    NOT NULL, -- the 16 bytes of Event.ID (32 hex characters)
	type         TEXT    NOT NULL,
	uid          TEXT    NOT NULL,
	message_id   TEXT    NOT NULL,
	topic        TEXT    NOT NULL,
	key          TEXT    NOT NULL,
	tags         TEXT    NOT NULL, -- JSON array, '' when none
	app          TEXT    NOT NULL,
	client_ip    TEXT    NOT NULL,
	node         TEXT    NOT NULL,
	cluster      TEXT    NOT NULL,
	subscription TEXT    NOT NULL,
	consumer     TEXT    NOT NULL,
	latency_ns   INTEGER NOT NULL,
	error        TEXT    NOT NULL,
	attempt      INTEGER NOT NULL,
	properties   TEXT    NOT NULL, -- JSON object, '' when none
	PRIMARY KEY (ts, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_uid        ON events (uid);
CREATE INDEX IF NOT EXISTS events_message_id ON events (message_id) WHERE message_id <> '';
CREATE INDEX IF NOT EXISTS events_key        ON events (key) WHERE key <> '';
CREATE INDEX IF NOT EXISTS events_topic_uid  ON events (topic, ts, id, uid);
`

const sqliteColumns = `ts, id, type, uid, message_id, topic, key, tags, app, client_ip, node, cluster,
	subscription, consumer, latency_ns, error, attempt, properties`

// OpenSQLite opens (creating if needed) the store in the file at path.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	return openSQLite(ctx, path, migrateSQLite)
}

// openSQLite is OpenSQLite with the step that brings the file's schema up
// to date; tests pass one that writes an older schema.
func openSQLite(ctx context.Context, path string, migrate func(context.Context, *sql.DB) error) (*SQLite, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "wal_autocheckpoint(128)") // a checkpoint runs inside a commit: keep it a small piece too
	q.Add("_pragma", "cache_size(-32768)")      // 32 MiB per connection: the id index takes random inserts
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("tracer: open sqlite: %w", err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	if err := migrate(ctx, db); err != nil {
		_ = db.Close()
		return nil, err
	}
	wconn, err := db.Conn(ctx)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("tracer: sqlite connection: %w", err)
	}
	s := &SQLite{db: db, wconn: wconn}
	for k := range s.inserts {
		if s.inserts[k], err = wconn.PrepareContext(ctx, insertSQL(1<<k)); err != nil {
			_ = s.closeStmts()
			_ = wconn.Close()
			_ = db.Close()
			return nil, fmt.Errorf("tracer: sqlite prepare: %w", err)
		}
	}
	return s, nil
}

func (s *SQLite) closeStmts() error {
	var errs []error
	for _, st := range s.inserts {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// Close closes the database. It is idempotent.
func (s *SQLite) Close() error {
	s.closeOnce.Do(func() {
		s.wmu.Lock()
		defer s.wmu.Unlock()
		s.closeErr = errors.Join(s.closeStmts(), s.wconn.Close(), s.db.Close())
	})
	return s.closeErr
}

// Write stores events in transactions of up to sqliteInsertRows rows each.
// Invalid events are reported as permanent items of a *BatchError; the
// others are stored. A Write that fails part way has stored the chunks
// before the failure; writing the batch again stores the rest, because
// inserts are idempotent on the key (INSERT OR IGNORE).
//
// Chunks, not one transaction per batch: committing writes every page the
// transaction changed to the WAL, and the uid and key indexes take random
// inserts, so a 500-row commit took 5-16 ms (wall time, on a busy core) in
// one piece, which the data plane waited behind. A 32-row chunk took a
// median of 1.3 ms of CPU with its commit, and between chunks the write
// yields to the data plane (yieldPoint, set by the Pipeline). The price is
// about half as much CPU again per event (BenchmarkSQLiteWrite; ADR 020,
// "Revision: pieces of a millisecond").
//
// Transactions are begun and ended with plain statements on the write
// connection rather than with database/sql's Tx: Tx.Stmt prepares a
// statement that belongs to a Conn again on every call, and parsing a
// 64-row INSERT cost a fifth of the write path.
func (s *SQLite) Write(ctx context.Context, events []Event) error {
	var bad []ItemError
	s.wmu.Lock()
	defer s.wmu.Unlock()
	args := make([]any, 0, sqliteInsertRows*sqliteColumnCount)
	rows := 0
	flush := func() error {
		if rows == 0 {
			return nil
		}
		start := time.Now()
		if err := s.insertChunk(ctx, args, rows); err != nil {
			return err
		}
		args, rows = args[:0], 0
		yieldPoint(ctx, time.Since(start))
		return nil
	}
	for i := range events {
		ev := &events[i]
		if err := ev.Validate(); err != nil {
			bad = append(bad, ItemError{Index: i, Reason: err.Error()})
			continue
		}
		id := ev.ID
		if id == "" {
			id = ComputeID(ev)
		}
		key, err := idBytes(id)
		if err != nil {
			bad = append(bad, ItemError{Index: i, Reason: err.Error()})
			continue
		}
		tags, props, err := encodeExtras(ev)
		if err != nil {
			bad = append(bad, ItemError{Index: i, Reason: err.Error()})
			continue
		}
		args = append(args, ev.Time.UnixMicro(), key, string(ev.Type), ev.UID, ev.MessageID, ev.Topic, ev.Key, tags,
			ev.App, ev.ClientIP, ev.Node, ev.Cluster, ev.Subscription, ev.Consumer,
			int64(ev.Latency), ev.Error, ev.Attempt, props)
		rows++
		if rows == sqliteInsertRows {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if bad != nil {
		return &BatchError{Items: bad}
	}
	return nil
}

// insertChunk inserts rows rows (at most sqliteInsertRows) of args in one
// transaction: one statement for a full chunk, otherwise one per binary
// digit of rows, so no INSERT is ever parsed on the write path.
func (s *SQLite) insertChunk(ctx context.Context, args []any, rows int) error {
	if _, err := s.wconn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("tracer: sqlite begin: %w", err)
	}
	first := 0
	for k := sqliteInsertShift; k >= 0; k-- {
		if rows-first < 1<<k {
			continue
		}
		n := 1 << k
		if _, err := s.inserts[k].ExecContext(ctx, args[first*sqliteColumnCount:(first+n)*sqliteColumnCount]...); err != nil {
			// Never cancelled: a transaction left open would block the next Write.
			_, _ = s.wconn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
			return fmt.Errorf("tracer: sqlite insert: %w", err)
		}
		first += n
	}
	if _, err := s.wconn.ExecContext(ctx, "COMMIT"); err != nil {
		_, _ = s.wconn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return fmt.Errorf("tracer: sqlite commit: %w", err)
	}
	return nil
}

// Rows per INSERT statement and per transaction: one statement for many
// rows costs far less than one per row in the pure-Go driver; 32 rows (576
// parameters) take a little over a millisecond with their commit (see Write).
const (
	sqliteInsertShift = 5
	sqliteInsertRows  = 1 << sqliteInsertShift
	sqliteColumnCount = 18
)

func insertSQL(rows int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", sqliteColumnCount), ",") + ")"
	return "INSERT OR IGNORE INTO events (" + sqliteColumns + ") VALUES " + strings.TrimSuffix(strings.Repeat(row+",", rows), ",")
}

func encodeExtras(ev *Event) (tags, props string, err error) {
	if len(ev.Tags) > 0 {
		b, err := json.Marshal(ev.Tags)
		if err != nil {
			return "", "", err
		}
		tags = string(b)
	}
	if len(ev.Properties) > 0 {
		b, err := json.Marshal(ev.Properties)
		if err != nil {
			return "", "", err
		}
		props = string(b)
	}
	return tags, props, nil
}

// ByUID implements Store.
func (s *SQLite) ByUID(ctx context.Context, uid string, page Page) (Result, error) {
	return s.list(ctx, "uid = ?", []any{uid}, page)
}

// ByMessageID implements Store.
func (s *SQLite) ByMessageID(ctx context.Context, messageID string, page Page) (Result, error) {
	return s.list(ctx, termSQL("message_id"), []any{messageID}, page)
}

// ByKey implements Store.
func (s *SQLite) ByKey(ctx context.Context, key string, page Page) (Result, error) {
	return s.list(ctx, termSQL("key"), []any{key}, page)
}

// termSQL is the condition "column = ?". The partial indexes on message_id
// and key leave out empty values; SQLite uses them only when the query
// itself excludes ”.
func termSQL(column string) string {
	if column == "message_id" || column == "key" {
		return "(" + column + " = ? AND " + column + " <> '')"
	}
	return column + " = ?"
}

// ByTopic implements Store.
func (s *SQLite) ByTopic(ctx context.Context, topic string, r TimeRange, page Page) (Result, error) {
	if err := r.validate(); err != nil {
		return Result{}, err
	}
	where := []string{"topic = ?"}
	args := []any{topic}
	if !r.From.IsZero() {
		where = append(where, "ts >= ?")
		args = append(args, r.From.UnixMicro())
	}
	if !r.To.IsZero() {
		where = append(where, "ts < ?")
		args = append(args, r.To.UnixMicro())
	}
	return s.list(ctx, strings.Join(where, " AND "), args, page)
}

// Search implements Store. Exact fields use the table's indexes where one
// fits (uid, message id, key, topic and time); tag, app, client IP,
// subscription and type are checked on the rows those select, so a query
// with only those fields reads the whole table in time order.
func (s *SQLite) Search(ctx context.Context, q Query, page Page) (Result, error) {
	if err := q.validate(); err != nil {
		return Result{}, err
	}
	where, args := searchWhere(&q)
	return s.list(ctx, where, args, page)
}

// searchWhere is the condition of q's events.
func searchWhere(q *Query) (string, []any) {
	where := []string{"1 = 1"}
	var args []any
	for _, f := range q.terms() {
		where = append(where, termSQL(f[0])) // f[0] is one of our column names, never input
		args = append(args, f[1])
	}
	if !q.Range.From.IsZero() {
		where = append(where, "ts >= ?")
		args = append(args, q.Range.From.UnixMicro())
	}
	if !q.Range.To.IsZero() {
		where = append(where, "ts < ?")
		args = append(args, q.Range.To.UnixMicro())
	}
	if q.Tag != "" {
		// tags is '' or a JSON array; json_each(NULL) is empty.
		where = append(where, "EXISTS (SELECT 1 FROM json_each(nullif(events.tags, '')) WHERE json_each.value = ?)")
		args = append(args, q.Tag)
	}
	if len(q.Types) > 0 {
		marks := make([]string, len(q.Types))
		for i, t := range q.Types {
			marks[i] = "?"
			args = append(args, string(t))
		}
		where = append(where, "type IN ("+strings.Join(marks, ",")+")")
	}
	return strings.Join(where, " AND "), args
}

// SearchMessages implements Store: the distinct uids of the matching
// events (read through the same indexes as Search, grouped), then all the
// events of a page's uids through the uid index.
func (s *SQLite) SearchMessages(ctx context.Context, q MessageQuery, page Page) (MessagePage, error) {
	return searchMessages(ctx, s, q, page)
}

func (s *SQLite) uidsAfter(ctx context.Context, q *Query, after string, n int) ([]string, error) {
	query, args := uidsAfterSQL(q, after, n)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.queryError(err)
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var uid string
		if err := rows.Scan(&uid); err != nil {
			return nil, fmt.Errorf("tracer: sqlite scan: %w", err)
		}
		out = append(out, uid)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tracer: sqlite rows: %w", err)
	}
	return out, nil
}

// uidsAfterSQL is the query of uidsAfter. With a topic, its plan is a
// search of the covering index events_topic_uid over the time range, with a
// temporary b-tree for DISTINCT (TestSQLiteQueryPlans): the table itself is
// not read. The window is read to its end whatever the page size: the page
// is in uid order and an event late in the window may belong to an early
// uid.
func uidsAfterSQL(q *Query, after string, n int) (string, []any) {
	where, args := searchWhere(q)
	// "+uid": the uid index would give the order but read every event of
	// every later message; the other conditions' indexes read far fewer.
	if q.UID == "" {
		where += " AND +uid > ?"
	} else {
		where += " AND uid > ?"
	}
	args = append(args, after, n)
	return `SELECT DISTINCT uid FROM events WHERE ` + where + ` ORDER BY 1 LIMIT ?`, args
}

func (s *SQLite) eventsOf(ctx context.Context, uids []string) (map[string][]Event, error) {
	args := make([]any, len(uids))
	for i, u := range uids {
		args[i] = u
	}
	// Ordered by uid first: the uid index gives that order without a sort,
	// and groupByUID only needs each uid's events in (ts, id) order.
	events, err := s.query(ctx, eventsOfSQL(len(uids)), args...)
	if err != nil {
		return nil, err
	}
	return groupByUID(events), nil
}

func eventsOfSQL(n int) string {
	marks := strings.TrimSuffix(strings.Repeat("?,", n), ",")
	return `SELECT ` + sqliteColumns + ` FROM events WHERE uid IN (` + marks + `) ORDER BY uid, ts, id`
}

func (s *SQLite) list(ctx context.Context, where string, args []any, page Page) (Result, error) {
	c, ok, err := decodeCursor(page.Cursor)
	if err != nil {
		return Result{}, err
	}
	if ok {
		id, err := idBytes(c.ID)
		if err != nil {
			return Result{}, fmt.Errorf("%w: %w", ErrBadCursor, err)
		}
		where += " AND (ts, id) > (?, ?)"
		args = append(args, c.TimeUS, id)
	}
	limit := page.limit()
	args = append(args, limit+1)
	events, err := s.query(ctx, `SELECT `+sqliteColumns+` FROM events WHERE `+where+` ORDER BY ts, id LIMIT ?`, args...)
	if err != nil {
		return Result{}, err
	}
	return pageResult(events, limit), nil
}

// Count returns how many events the store holds.
func (s *SQLite) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil {
		return 0, fmt.Errorf("tracer: sqlite count: %w", err)
	}
	return n, nil
}

// Consumption implements Store.
func (s *SQLite) Consumption(ctx context.Context, uid string) ([]Consumption, error) {
	args := []any{uid}
	marks := make([]string, len(ConsumptionTypes))
	for i, t := range ConsumptionTypes {
		marks[i] = "?"
		args = append(args, string(t))
	}
	args = append(args, maxConsumptionEvents)
	events, err := s.query(ctx, `SELECT `+sqliteColumns+` FROM events
		WHERE uid = ? AND type IN (`+strings.Join(marks, ",")+`) ORDER BY ts DESC, id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, err
	}
	return reduceConsumption(events), nil
}

// DeleteBefore implements Store. It deletes in chunks so that writers are
// not held up by one long transaction.
func (s *SQLite) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	var total int64
	for {
		s.wmu.Lock()
		res, err := s.wconn.ExecContext(ctx, `DELETE FROM events WHERE (ts, id) IN (SELECT ts, id FROM events WHERE ts < ? ORDER BY ts, id LIMIT 5000)`, t.UnixMicro())
		s.wmu.Unlock()
		if err != nil {
			return total, fmt.Errorf("tracer: sqlite delete: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("tracer: sqlite delete: %w", err)
		}
		total += n
		if n == 0 {
			return total, nil
		}
	}
}

func (s *SQLite) queryError(err error) error {
	if errors.Is(err, sql.ErrConnDone) || strings.Contains(err.Error(), "database is closed") {
		return ErrClosed
	}
	return fmt.Errorf("tracer: sqlite query: %w", err)
}

func (s *SQLite) query(ctx context.Context, q string, args ...any) ([]Event, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.queryError(err)
	}
	defer func() { _ = rows.Close() }()
	var out []Event
	for rows.Next() {
		var (
			ev          Event
			id          []byte
			typ         string
			tags, props string
			ts, latency int64
		)
		if err := rows.Scan(&ts, &id, &typ, &ev.UID, &ev.MessageID, &ev.Topic, &ev.Key, &tags, &ev.App, &ev.ClientIP,
			&ev.Node, &ev.Cluster, &ev.Subscription, &ev.Consumer, &latency, &ev.Error, &ev.Attempt, &props); err != nil {
			return nil, fmt.Errorf("tracer: sqlite scan: %w", err)
		}
		ev.ID = hex.EncodeToString(id)
		ev.Type = Type(typ)
		ev.Time = time.UnixMicro(ts).UTC()
		ev.Latency = time.Duration(latency)
		if tags != "" {
			if err := json.Unmarshal([]byte(tags), &ev.Tags); err != nil {
				return nil, fmt.Errorf("tracer: sqlite tags of %s: %w", ev.ID, err)
			}
		}
		if props != "" {
			if err := json.Unmarshal([]byte(props), &ev.Properties); err != nil {
				return nil, fmt.Errorf("tracer: sqlite properties of %s: %w", ev.ID, err)
			}
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tracer: sqlite rows: %w", err)
	}
	return out, nil
}
