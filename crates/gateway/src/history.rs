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
