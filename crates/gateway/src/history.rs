//! What the gateway reads from Postgres: the sequencer's position and the
//! durable history it replays, batched across streams. Every page carries
//! the positions of its own snapshot (`herald_store::history`), so a
//! reader can tell a complete page from one that retention cut short.

use herald_domain::Seq;
pub use herald_store::history::{positions, Page, Positions};
use sqlx::PgPool;

/// Reads [`positions`] for many callers at once. A caller's answer comes from
/// a query that *started after it asked* (the replay seam needs a head read
/// after the stream's subscription was confirmed): every caller queued while
/// one query runs is answered by the next. A reconnect storm of a thousand
/// streams costs a handful of queries instead of a thousand, and their pool
/// connections are left to the replays. Cheap to clone.
#[derive(Clone)]
pub struct HeadReader {
    requests: tokio::sync::mpsc::UnboundedSender<tokio::sync::oneshot::Sender<Result<Positions, String>>>,
}

impl HeadReader {
    /// Starts the reader task on the current runtime; it ends when every
    /// handle is dropped.
    pub fn start(pool: PgPool) -> Self {
        let (requests, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<tokio::sync::oneshot::Sender<Result<Positions, String>>>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiters = vec![first];
                while let Ok(w) = rx.try_recv() {
                    waiters.push(w);
                }
                let read = positions(&pool).await.map_err(|e| e.to_string());
                for w in waiters {
                    let _ = w.send(read.clone());
                }
            }
        });
        Self { requests }
    }

    /// The positions, read after this call began.
    pub async fn read(&self) -> Result<Positions, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.requests
            .send(tx)
            .map_err(|_| "the head reader stopped".to_owned())?;
        rx.await.map_err(|_| "the head reader stopped".to_owned())?
    }
}

/// One stream's request for its next replay page.
struct PageRequest {
    topics: Vec<String>,
    after: Seq,
    reply: tokio::sync::oneshot::Sender<Result<Page, String>>,
}

/// Replay queries in flight at once, at most (of the gateway's pool).
const PAGE_QUERIES_IN_FLIGHT: usize = 4;
/// Streams answered by one replay query, at most.
const STREAMS_PER_PAGE_QUERY: usize = 128;

/// Reads replay pages for many streams at once: the streams that ask while
/// [`PAGE_QUERIES_IN_FLIGHT`] queries run are answered together by the next
/// one, each with exactly the page [`events_after`] would give it (its
/// topics, after its position, at most `limit`, in `seq` order). A reconnect
/// storm of a thousand streams costs a handful of queries instead of a
/// thousand, and one stream alone costs what it did. Every answer comes from
/// a query that started after the stream asked, which is all the replay seam
/// needs. Cheap to clone.
#[derive(Clone)]
pub struct ReplayReader {
    requests: tokio::sync::mpsc::UnboundedSender<PageRequest>,
}

impl ReplayReader {
    /// Starts the reader task on the current runtime; it ends when every
    /// handle is dropped.
    pub fn start(pool: PgPool, limit: i64) -> Self {
        let (requests, mut rx) = tokio::sync::mpsc::unbounded_channel::<PageRequest>();
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(PAGE_QUERIES_IN_FLIGHT));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let Some(first) = rx.recv().await else { return };
                let mut batch = vec![first];
                while batch.len() < STREAMS_PER_PAGE_QUERY {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                let pool = pool.clone();
                tokio::spawn(async move {
                    let result = pages(&pool, &batch, limit).await;
                    drop(permit);
                    match result {
                        Ok(pages) => {
                            for (r, page) in batch.into_iter().zip(pages) {
                                let _ = r.reply.send(Ok(page));
                            }
                        }
                        Err(e) => {
                            let e = e.to_string();
                            for r in batch {
                                let _ = r.reply.send(Err(e.clone()));
                            }
                        }
                    }
                });
            }
        });
        Self { requests }
    }

    /// The next replay page of a stream of `topics` at `after`, with the
    /// positions of the page's snapshot.
    pub async fn page(&self, topics: &[String], after: Seq) -> Result<Page, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = PageRequest {
            topics: topics.to_vec(),
            after,
            reply,
        };
        self.requests
            .send(request)
            .map_err(|_| "the replay reader stopped".to_owned())?;
        answer.await.map_err(|_| "the replay reader stopped".to_owned())?
    }
}

/// The pages of `batch`, in its order, each with the positions of the one
/// snapshot they were all read in.
async fn pages(pool: &PgPool, batch: &[PageRequest], limit: i64) -> Result<Vec<Page>, sqlx::Error> {
    if let [one] = batch {
        return Ok(vec![events_after(pool, &one.topics, one.after, limit).await?]);
    }
    let index: Vec<i32> = (0..batch.len() as i32).collect();
    // Topics never contain `,` (see `herald_domain::Topic`).
    let topics: Vec<String> = batch.iter().map(|r| r.topics.join(",")).collect();
    let after: Vec<i64> = batch.iter().map(|r| r.after.get()).collect();
    let rows = sqlx::query!(
        r#"SELECT i AS "i!", head AS "head!: Seq", pruned AS "pruned!: Seq",
                  id AS "id?", seq AS "seq?: Seq", topic AS "topic?",
                  type AS "event_type?", data AS "data?", created_at AS "created_at?"
             FROM herald_history_pages($1, $2, $3, $4)"#,
        &index,
        &topics,
        &after,
        limit,
    )
    .fetch_all(pool)
    .await?;
    let mut out: Vec<Page> = (0..batch.len())
        .map(|_| Page {
            events: Vec::new(),
            positions: Positions::default(),
        })
        .collect();
    for r in rows {
        let Some(page) = usize::try_from(r.i).ok().and_then(|i| out.get_mut(i)) else {
            continue;
        };
        page.positions = Positions {
            head: r.head,
            pruned: r.pruned,
        };
        if let Some(e) =
            herald_store::history::envelope(r.id, r.seq, r.topic, r.event_type, r.data, r.created_at)
        {
            page.events.push(e);
        }
    }
    Ok(out)
}

pub use herald_store::history::events_after;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failed test

    use super::*;

    fn seqs(page: &Page) -> Vec<i64> {
        page.events.iter().map(|e| e.seq.get()).collect()
    }

    /// 90 events, round robin over `user:a`, `user:b`, `user:c`, seq 1..=90.
    async fn history(pool: &PgPool) {
        sqlx::query(
            "INSERT INTO events (id, topic, type, data, seq)
             SELECT gen_random_uuid(), 'user:' || (ARRAY['a','b','c'])[1 + g % 3], 't', '{}', g
               FROM generate_series(1, 90) g",
        )
        .execute(pool)
        .await
        .unwrap();
    }

    fn request(topics: &[&str], after: i64) -> PageRequest {
        PageRequest {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            after: Seq::new(after),
            reply: tokio::sync::oneshot::channel().0,
        }
    }

    /// One query for several streams gives each exactly the page its own
    /// query would: its topics only, after its position, the limit counted
    /// across its topics, in order; an empty page where nothing is left.
    #[sqlx::test(migrations = "../../migrations")]
    async fn one_query_for_many_streams_gives_each_its_own_page(pool: PgPool) {
        history(&pool).await;
        let batch = [
            request(&["user:a"], 0),
            request(&["user:b", "user:c"], 10),
            request(&["user:a"], 80),
            request(&["user:zz"], 0),
            request(&["user:c"], 90),
        ];
        let got = pages(&pool, &batch, 7).await.unwrap();
        assert_eq!(got.len(), batch.len());
        for (req, page) in batch.iter().zip(&got) {
            let want = events_after(&pool, &req.topics, req.after, 7).await.unwrap();
            assert_eq!(seqs(page), seqs(&want), "{:?} after {}", req.topics, req.after);
            assert!(page.events.iter().all(|e| req.topics.contains(&e.topic)));
            assert_eq!(page.positions, want.positions);
        }
        assert_eq!(seqs(&got[1]), vec![11, 13, 14, 16, 17, 19, 20]);
        assert_eq!(seqs(&got[2]), vec![81, 84, 87, 90]);
        assert!(got[3].events.is_empty() && got[4].events.is_empty());
    }

    /// `n` sequenced events, round robin over `topics`, after what is
    /// there, with the sequencer's head moved to the last.
    async fn sequenced(pool: &PgPool, topics: &[&str], n: i64) {
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        sqlx::query(
            "WITH h AS (SELECT last_seq FROM sequencer)
             INSERT INTO events (id, topic, type, data, seq)
             SELECT gen_random_uuid(), ($1::text[])[1 + g % cardinality($1::text[])], 't', '{}', h.last_seq + g
               FROM h, generate_series(1, $2) g",
        )
        .bind(&topics)
        .bind(n)
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("UPDATE sequencer SET last_seq = last_seq + $1, published_seq = last_seq + $1")
            .bind(n)
            .execute(pool)
            .await
            .unwrap();
    }

    /// The page a plain query gives: `topics` after `after`, in order.
    async fn plain_page(pool: &PgPool, topics: &[String], after: i64, limit: i64) -> Vec<i64> {
        sqlx::query_scalar("SELECT seq FROM events WHERE topic = ANY($1) AND seq > $2 ORDER BY seq LIMIT $3")
            .bind(topics)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await
            .unwrap()
    }

    /// Readers far behind the head (more than four pages of the log after
    /// them, where a page is read topic by topic) get
    /// exactly the page a plain query gives: one topic or several, one with
    /// fewer events than a page, one named twice, alone or batched; then
    /// random readers and page sizes, near the head and far from it.
    #[sqlx::test(migrations = "../../migrations")]
    async fn pages_far_behind_the_head_are_the_plain_querys(pool: PgPool) {
        sequenced(&pool, &["user:a", "user:b", "user:c", "user:b"], 400).await;
        sequenced(&pool, &["user:rare"], 3).await;
        sequenced(&pool, &["user:a", "user:b"], 400).await;
        let asks: [(&[&str], i64); 7] = [
            (&["user:a"], 0),
            (&["user:b", "user:c"], 10),
            (&["user:c", "user:rare"], 350),
            (&["user:rare"], 0),
            (&["user:a", "user:a"], 100),
            (&["user:zz", "user:c"], 0),
            (&["user:a"], 790),
        ];
        let batch: Vec<PageRequest> = asks.iter().map(|(t, a)| request(t, *a)).collect();
        same_as_plain(&pool, &batch, 7).await;

        // And at random: readers of 1 to 4 topics (repeats, unknown ones
        // included), anywhere in the log, pages of 1 to 40.
        let names = ["user:a", "user:b", "user:c", "user:rare", "user:zz"];
        let seed = 0x2545_f491_4f6c_dd1du64
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64);
        println!("seed {seed:#x}");
        let mut x = seed | 1;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..6 {
            let limit = 1 + next(40) as i64;
            let batch: Vec<PageRequest> = (0..12)
                .map(|_| {
                    let topics: Vec<&str> = (0..1 + next(4)).map(|_| names[next(5) as usize]).collect();
                    request(&topics, next(820) as i64)
                })
                .collect();
            same_as_plain(&pool, &batch, limit).await;
        }
    }

    /// Each request's page, batched and alone, is the plain query's.
    async fn same_as_plain(pool: &PgPool, batch: &[PageRequest], limit: i64) {
        let got = pages(pool, batch, limit).await.unwrap();
        for (req, page) in batch.iter().zip(&got) {
            let want = plain_page(pool, &req.topics, req.after.get(), limit).await;
            assert_eq!(
                seqs(page),
                want,
                "batched: {:?} after {}, limit {limit}",
                req.topics,
                req.after
            );
            let alone = events_after(pool, &req.topics, req.after, limit).await.unwrap();
            assert_eq!(
                seqs(&alone),
                want,
                "alone: {:?} after {}, limit {limit}",
                req.topics,
                req.after
            );
        }
    }

    /// A page costs the same however far behind its reader is, also when
    /// the statistics take its topic for a rare one (it grew after the last
    /// ANALYZE, as a burst does): its query sorted every event of the topic
    /// after the position, ~184 ms a page 300,000 events back, so a reader
    /// far behind caught up in time quadratic in its backlog. (Here that
    /// would be 30,000 rows, several hundred buffers more; reading topic by
    /// topic costs a few dozen.)
    #[sqlx::test(migrations = "../../migrations")]
    async fn a_page_far_behind_reads_no_more_than_one_near_the_head(pool: PgPool) {
        herald_test_support::autovacuum_off(&pool).await;
        sequenced(&pool, &["user:other"], 2_000).await;
        sqlx::query("ANALYZE events").execute(&pool).await.unwrap();
        sequenced(&pool, &["user:burst"], 30_000).await;
        let head = 32_000;
        let page = |after: i64| format!("SELECT * FROM herald_history_page('{{user:burst}}', {after}, 500)");
        let batch = |after: i64| {
            format!(
                "SELECT * FROM herald_history_pages('{{0,1}}', '{{user:burst,user:other}}', '{{{after},0}}', 500)"
            )
        };
        // One backend for every count, each statement run once before: a cold
        // backend's catalog reads count too.
        let mut conn = pool.acquire().await.unwrap();
        for sql in [page(head - 1_500), page(2_000), batch(head - 1_500), batch(2_000)] {
            herald_test_support::buffers_touched(&mut conn, &sql).await;
        }
        let (near, far) = (
            herald_test_support::buffers_touched(&mut conn, &page(head - 1_500)).await,
            herald_test_support::buffers_touched(&mut conn, &page(2_000)).await,
        );
        assert!(
            far <= near + 100,
            "a page 30,000 events back read {far} buffers, one near the head {near}"
        );
        let (near, far) = (
            herald_test_support::buffers_touched(&mut conn, &batch(head - 1_500)).await,
            herald_test_support::buffers_touched(&mut conn, &batch(2_000)).await,
        );
        assert!(
            far <= near + 100,
            "batched: a page 30,000 events back read {far} buffers, one near the head {near}"
        );
    }

    /// A batched page of a topic that is rare in the log (a user's own
    /// topic, among every user's) reads that topic's rows, as the same page
    /// alone does: in a batch the topics come from each request's row, an
    /// unknown array to the planner, and it walked the `seq` index filtered
    /// by topic, over every other event after the reader (here ~200,000;
    /// 499,500 rows and 118 ms a page with 600,000 events back).
    #[sqlx::test(migrations = "../../migrations")]
    async fn a_rare_topic_far_behind_reads_its_own_rows_in_a_batch(pool: PgPool) {
        herald_test_support::autovacuum_off(&pool).await;
        let mut topics = vec!["user:common"; 999];
        topics.push("user:rare");
        sequenced(&pool, &topics, 200_000).await;
        sqlx::query("ANALYZE events").execute(&pool).await.unwrap();
        let alone = "SELECT * FROM herald_history_page('{user:rare}', 0, 500)";
        let batched =
            "SELECT * FROM herald_history_pages('{0,1}', '{user:rare,user:common}', '{0,199000}', 500)";
        let mut conn = pool.acquire().await.unwrap();
        for sql in [alone, batched] {
            herald_test_support::buffers_touched(&mut conn, sql).await; // warm
        }
        let (alone, batched) = (
            herald_test_support::buffers_touched(&mut conn, alone).await,
            herald_test_support::buffers_touched(&mut conn, batched).await,
        );
        assert!(
            batched <= alone + 100,
            "a batched page of a rare topic far behind read {batched} buffers, the same page alone {alone}"
        );
        let batch = [
            request(&["user:rare"], 0),
            request(&["user:common"], 199_000),
            request(&["user:rare", "user:common"], 150_000),
        ];
        same_as_plain(&pool, &batch, 500).await;
    }

    /// Streams asking at once through the reader (so that most share a
    /// query) each get their own page.
    #[sqlx::test(migrations = "../../migrations")]
    async fn concurrent_readers_each_get_their_own_page(pool: PgPool) {
        history(&pool).await;
        let reader = ReplayReader::start(pool.clone(), 5);
        let asks: Vec<_> = (0..60i64)
            .map(|k| {
                let reader = reader.clone();
                let topic = ["user:a", "user:b", "user:c"][(k % 3) as usize].to_owned();
                async move {
                    (
                        k,
                        topic.clone(),
                        reader.page(&[topic], Seq::new(k)).await.unwrap(),
                    )
                }
            })
            .collect();
        for (k, topic, page) in futures_util::future::join_all(asks).await {
            let want = events_after(&pool, &[topic], Seq::new(k), 5).await.unwrap();
            assert_eq!(seqs(&page), seqs(&want), "after {k}");
        }
    }
}
