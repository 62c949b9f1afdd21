// End-to-end scenario for a TypeScript client generated from openapi/openapi.json:
// `openapi-typescript` writes generated/schema.d.ts, `openapi-fetch` is the runtime.
// Nothing here is hand-written per endpoint: every call goes through the generated
// `paths` types, and `tsc` rejects the file if the spec and these calls disagree.
//
// Run by scripts/clients-test against a throw-away stack. To run it by hand against
// `scripts/up`:
//   npm ci && npm run generate && npm run build
//   CLIENT_API_URL=http://127.0.0.1:8080 CLIENT_GATEWAY_URL=http://127.0.0.1:8081 \
//   CLIENT_SERVICE_TOKEN=$(herald-token --sub svc --scope publish) \
//   CLIENT_USER_TOKEN=$(herald-token --sub alice) CLIENT_USER_ID=alice \
//   CLIENT_READER_TOKEN=$(herald-token --sub reader --topics feed:demo-1) CLIENT_FEED=demo-1 \
//   npm run scenario
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/schema.js";

type OrderStatus = components["schemas"]["OrderStatus"];
type Problem = components["schemas"]["Problem"];

function env(name: string, fallback?: string): string {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === "") {
    throw new Error(`environment variable ${name} is required`);
  }
  return v;
}

const apiUrl = env("CLIENT_API_URL");
const gatewayUrl = env("CLIENT_GATEWAY_URL");
const userId = env("CLIENT_USER_ID", "alice");
const feed = env("CLIENT_FEED");
const orderId = env(
  "CLIENT_ORDER_ID",
  `ts-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`,
);

function client(baseUrl: string, token?: string) {
  return createClient<paths>({
    baseUrl,
    headers: token ? { Authorization: `Bearer ${token}` } : {},
  });
}

const service = client(apiUrl, env("CLIENT_SERVICE_TOKEN"));
const user = client(apiUrl, env("CLIENT_USER_TOKEN"));
const reader = client(apiUrl, env("CLIENT_READER_TOKEN"));
const anonymous = client(apiUrl);
const userAtGateway = client(gatewayUrl, env("CLIENT_USER_TOKEN"));

class CheckFailed extends Error {}

function check(cond: unknown, what: string): asserts cond {
  if (!cond) throw new CheckFailed(what);
}

function eq<T>(actual: T, expected: T, what: string): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  check(a === e, `${what}: expected ${e}, got ${a}`);
}

// The generated client's view of one call: `data` on 2xx, `error` (the parsed body) on
// anything else, and the fetch `response` for the status and headers.
interface Result<D, E> {
  data?: D;
  error?: E;
  response: Response;
}

function expectOk<D, E>(r: Result<D, E>, status: number, what: string): D {
  check(
    r.response.status === status && r.data !== undefined,
    `${what}: expected HTTP ${status}, got ${r.response.status} ${JSON.stringify(r.error ?? r.data)}`,
  );
  return r.data;
}

function expectProblem<D, E>(r: Result<D, E>, status: number, what: string): Problem & Record<string, unknown> {
  eq(r.response.status, status, `${what}: HTTP status`);
  const ct = r.response.headers.get("content-type") ?? "";
  check(ct.startsWith("application/problem+json"), `${what}: content-type is ${ct}, not application/problem+json`);
  check(r.error !== undefined && typeof r.error === "object", `${what}: no problem document`);
  const problem = r.error as unknown as Problem & Record<string, unknown>;
  eq(problem.status, status, `${what}: problem.status`);
  check(typeof problem.type === "string" && problem.type.length > 0, `${what}: problem.type`);
  check(typeof problem.title === "string" && problem.title.length > 0, `${what}: problem.title`);
  return problem;
}

let steps = 0;
async function step(name: string, body: () => Promise<void>): Promise<void> {
  const t0 = performance.now();
  await body();
  steps += 1;
  console.log(`  ok  ${name} (${Math.round(performance.now() - t0)} ms)`);
}

const LIFECYCLE: OrderStatus[] = ["placed", "paid", "packed", "shipped", "out_for_delivery", "delivered"];

async function main(): Promise<void> {
  console.log(`typescript scenario: api ${apiUrl}, gateway ${gatewayUrl}, order ${orderId}, feed ${feed}`);

  await step("401 problem without a token", async () => {
    const r = await anonymous.GET("/v1/me/notifications/counts");
    expectProblem(r, 401, "GET /v1/me/notifications/counts without a token");
  });

  await step(`PUT /v1/orders/${orderId} creates the order (201), again updates it (200)`, async () => {
    const created = expectOk(
      await service.PUT("/v1/orders/{order_id}", {
        params: { path: { order_id: orderId } },
        body: { customer_id: userId },
      }),
      201,
      "PUT order",
    );
    eq(created.order_id, orderId, "order_id");
    eq(created.customer_id, userId, "customer_id");
    eq(created.status, "placed", "initial status");
    eq(created.timeline.length, 1, "timeline after create");
    const again = expectOk(
      await service.PUT("/v1/orders/{order_id}", {
        params: { path: { order_id: orderId } },
        body: { customer_id: userId },
      }),
      200,
      "PUT order again",
    );
    eq(again.status, "placed", "status after second PUT");
  });

  await step("POST /v1/orders/{id}/status: placed → … → delivered", async () => {
    for (const status of LIFECYCLE.slice(1)) {
      const order = expectOk(
        await service.POST("/v1/orders/{order_id}/status", {
          params: { path: { order_id: orderId } },
          body: { status },
        }),
        200,
        `status → ${status}`,
      );
      eq(order.status, status, `status after → ${status}`);
    }
  });

  await step("illegal transition delivered → paid is a 409 problem naming from/to", async () => {
    const problem = expectProblem(
      await service.POST("/v1/orders/{order_id}/status", {
        params: { path: { order_id: orderId } },
        body: { status: "paid" },
      }),
      409,
      "delivered → paid",
    );
    eq(problem.from, "delivered", "problem.from");
    eq(problem.to, "paid", "problem.to");
  });

  await step("GET /v1/orders/{id} as the customer: 6 timeline entries in order", async () => {
    const order = expectOk(
      await user.GET("/v1/orders/{order_id}", { params: { path: { order_id: orderId } } }),
      200,
      "GET order as customer",
    );
    eq(order.status, "delivered", "current status");
    eq(
      order.timeline.map((e) => e.status),
      LIFECYCLE,
      "timeline statuses",
    );
    const times = order.timeline.map((e) => Date.parse(e.at));
    check(times.every((t, i) => !Number.isNaN(t) && (i === 0 || t >= times[i - 1])), `timeline times ${JSON.stringify(times)}`);
    expectProblem(
      await reader.GET("/v1/orders/{order_id}", { params: { path: { order_id: orderId } } }),
      404,
      "GET order as another user",
    );
  });

  let unreadId = "";
  await step("GET /v1/me/notifications: the order's 6 notifications, newest first", async () => {
    const mine: components["schemas"]["Notification"][] = [];
    let total = 0;
    let cursor: string | undefined;
    for (let page = 0; page < 50; page++) {
      const body = expectOk(
        await user.GET("/v1/me/notifications", {
          params: { query: { category: "order", limit: 100, ...(cursor ? { cursor } : {}) } },
        }),
        200,
        "list notifications",
      );
      total += body.items.length;
      for (const n of body.items) {
        eq(n.category, "order", "category");
        if ((n.data as Record<string, unknown>).order_id === orderId) mine.push(n);
      }
      if (!body.next_cursor) break;
      cursor = body.next_cursor;
    }
    check(total >= 6, `expected at least 6 order notifications, got ${total}`);
    eq(
      mine.map((n) => (n.data as Record<string, unknown>).status),
      [...LIFECYCLE].reverse(),
      "statuses of this order's notifications (newest first)",
    );
    check(mine.every((n) => n.read_at == null), "the new notifications are unread");
    unreadId = mine[0].id;
  });

  await step("POST /v1/me/notifications/{id}/read lowers the unread count by 1", async () => {
    const before = expectOk(await user.GET("/v1/me/notifications/counts"), 200, "counts before");
    check(before.unread >= 6, `unread before is ${before.unread}`);
    const read = expectOk(
      await user.POST("/v1/me/notifications/{id}/read", { params: { path: { id: unreadId } } }),
      200,
      "mark read",
    );
    eq(read.id, unreadId, "marked notification id");
    check(read.read_at != null, "read_at is set");
    const after = expectOk(await user.GET("/v1/me/notifications/counts"), 200, "counts after");
    eq(after.unread, before.unread - 1, "unread after marking one read");
    eq(after.total, before.total, "total after marking one read");
    // Idempotent: marking it again changes nothing.
    expectOk(
      await user.POST("/v1/me/notifications/{id}/read", { params: { path: { id: unreadId } } }),
      200,
      "mark read again",
    );
    const again = expectOk(await user.GET("/v1/me/notifications/counts"), 200, "counts after again");
    eq(again.unread, after.unread, "unread after marking it read twice");
    expectProblem(
      await reader.POST("/v1/me/notifications/{id}/read", { params: { path: { id: unreadId } } }),
      404,
      "another user's notification",
    );
  });

  const posted: string[] = [];
  await step(`POST /v1/feeds/${feed}/activities ×5 (201)`, async () => {
    for (let i = 1; i <= 5; i++) {
      const a = expectOk(
        await service.POST("/v1/feeds/{feed}/activities", {
          params: { path: { feed } },
          body: { actor: `user:${userId}`, verb: "commented", object: `post:${i}` },
        }),
        201,
        `activity ${i}`,
      );
      eq(a.feed, feed, "activity.feed");
      eq(a.object, `post:${i}`, "activity.object");
      posted.push(a.id);
    }
  });

  await step("GET /v1/feeds/{feed}/activities?limit=2 following next_cursor: all 5, once, newest first", async () => {
    const seen: string[] = [];
    const pageSizes: number[] = [];
    let cursor: string | undefined;
    for (let page = 0; ; page++) {
      check(page < 10, "pagination did not end after 10 pages");
      const body = expectOk(
        await reader.GET("/v1/feeds/{feed}/activities", {
          params: { path: { feed }, query: { limit: 2, ...(cursor ? { cursor } : {}) } },
        }),
        200,
        `feed page ${page + 1}`,
      );
      check(body.items.length <= 2, `page ${page + 1} has ${body.items.length} items (limit 2)`);
      pageSizes.push(body.items.length);
      seen.push(...body.items.map((a) => a.id));
      if (!body.next_cursor) break;
      cursor = body.next_cursor;
    }
    eq(seen, [...posted].reverse(), `activity ids over pages of ${JSON.stringify(pageSizes)}`);
    expectProblem(
      await user.GET("/v1/feeds/{feed}/activities", { params: { path: { feed } } }),
      403,
      "feed read without a granting topics claim",
    );
  });

  await step("gateway GET /v1/stream refuses an ungranted topic with a 403 problem", async () => {
    expectProblem(
      await userAtGateway.GET("/v1/stream", { params: { query: { topics: `feed:${feed}` } } }),
      403,
      "stream of feed:{feed} without a grant",
    );
  });

  console.log(`typescript scenario: ${steps} steps passed`);
}

main().catch((e: unknown) => {
  if (e instanceof CheckFailed) {
    console.error(`typescript scenario FAILED: ${e.message}`);
  } else {
    console.error("typescript scenario FAILED with an exception:", e);
  }
  process.exit(1);
});
