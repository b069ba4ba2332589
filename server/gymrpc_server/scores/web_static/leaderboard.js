// The leaderboard page: fetches /api/leaderboard, draws one table per evaluated
// environment with a sparkline of each user's score over time, and refreshes every
// `refresh_seconds` without reloading. No library, nothing loaded from elsewhere.
//
// Everything shown is built with createElement and textContent: a user name never
// becomes markup. The token is read from the sign-in form, posted once, and cleared
// from the form at once; afterwards only the HttpOnly cookie (invisible here) holds it.
"use strict";

(() => {
  const API = "/api/leaderboard";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const SPARK = { width: 120, height: 28, pad: 3 };
  const COLUMNS = [
    ["#", "rank", "Rank: best score first"],
    ["User", "user", ""],
    ["Score", "score", "Mean return of the user's last evaluation episodes"],
    ["Episodes", "episodes", "Evaluation episodes the score covers"],
    ["Failures", "failure-rate", "Share of those episodes that ended in a failure"],
    ["Last episode", "last-episode", "When the most recent of them ended (your local time)"],
    ["Score over time", "trend", "The score after each evaluation episode"],
  ];
  // A fixed locale: every viewer reads the same digits.
  const scoreFormat = new Intl.NumberFormat("en-US", {
    minimumFractionDigits: 2,
    maximumFractionDigits: 2,
  });
  const rateFormat = new Intl.NumberFormat("en-US", {
    style: "percent",
    minimumFractionDigits: 1,
    maximumFractionDigits: 1,
  });

  const state = { refreshMs: 10000, timer: null, lastUpdate: null, paused: false };
  const sections = new Map(); // env_id -> <section>
  const byId = (id) => document.getElementById(id);

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svgElement(tag, attributes) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    return node;
  }

  const pad2 = (n) => String(n).padStart(2, "0");

  function formatTime(iso) {
    const d = new Date(iso);
    return (
      `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
      `${pad2(d.getHours())}:${pad2(d.getMinutes())}`
    );
  }

  function formatClock(d) {
    return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  }

  function showNotice(text) {
    const notice = byId("notice");
    notice.textContent = text;
    notice.hidden = !text;
  }

  // The time axis is shared by a board's sparklines, so that their x positions compare
  // (who started when); each line has its own score scale, so that its shape shows.
  function timeSpan(rows) {
    let start = Infinity;
    let end = -Infinity;
    for (const row of rows) {
      if (!row.history.length) continue;
      start = Math.min(start, Date.parse(row.history[0].time));
      end = Math.max(end, Date.parse(row.history[row.history.length - 1].time));
    }
    return { start, end };
  }

  function sparkline(row, span) {
    const { width, height, pad } = SPARK;
    const svg = svgElement("svg", {
      class: "spark",
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      role: "img",
    });
    const title = svgElement("title", {});
    svg.append(title);
    const points = row.history;
    if (!points.length) {
      title.textContent = `${row.user}: no history`;
      return svg;
    }
    const scores = points.map((p) => p.score);
    let low = Math.min(...scores);
    let high = Math.max(...scores);
    if (high === low) {
      // A constant score: a flat line through the middle.
      low -= 1;
      high += 1;
    }
    const x = (time) =>
      span.end > span.start
        ? pad + ((width - 2 * pad) * (time - span.start)) / (span.end - span.start)
        : width - pad;
    const y = (score) => pad + ((height - 2 * pad) * (high - score)) / (high - low);
    const coords = points.map((p) => [x(Date.parse(p.time)), y(p.score)]);
    const d = coords
      .map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`)
      .join(" ");
    svg.append(svgElement("path", { class: "series", d, "data-user": row.user }));
    const [lastX, lastY] = coords[coords.length - 1];
    svg.append(
      svgElement("circle", {
        class: row.provisional ? "last provisional" : "last",
        cx: lastX.toFixed(1),
        cy: lastY.toFixed(1),
        r: 2.5,
      }),
    );
    title.textContent =
      `${row.user}: ${scoreFormat.format(scores[0])} after the first episode, ` +
      `${scoreFormat.format(scores[scores.length - 1])} now ` +
      `(${row.total_episodes} evaluation episodes)`;
    svg.setAttribute("aria-label", title.textContent);
    return svg;
  }

  function tableRow(row, context) {
    const tr = element("tr");
    tr.dataset.user = row.user;
    if (context.authRequired && row.user === context.viewer) tr.classList.add("me");
    if (row.provisional) tr.classList.add("provisional");
    tr.append(element("td", "rank", String(row.rank)));
    const user = element("td", "user", row.user);
    user.title = row.user; // a long name is cut short with an ellipsis
    tr.append(user);
    const score = element("td", "score");
    if (row.provisional) {
      const badge = element("span", "badge", "provisional");
      badge.title = `Fewer than ${context.window} evaluation episodes: the score may still move`;
      score.append(badge);
    }
    score.append(element("span", "value", scoreFormat.format(row.score)));
    tr.append(score);
    const episodes = element("td", "episodes", String(row.episodes));
    episodes.title = `${row.total_episodes} evaluation episodes in all`;
    tr.append(episodes);
    const rate = row.failure_rate === null ? "–" : rateFormat.format(row.failure_rate);
    tr.append(element("td", "failure-rate", rate));
    const last = element("td", "last-episode");
    const time = element("time", "", formatTime(row.last_episode_time));
    time.dateTime = row.last_episode_time;
    time.title = row.last_episode_time;
    last.append(time);
    tr.append(last);
    const trend = element("td", "trend");
    trend.append(sparkline(row, context.span));
    tr.append(trend);
    return tr;
  }

  function boardSection(envId) {
    if (sections.has(envId)) return sections.get(envId);
    const section = element("section", "board");
    section.dataset.envId = envId;
    const head = element("div", "board-head");
    head.append(element("h2", "", envId), element("span", "count muted"));
    const headings = element("tr");
    for (const [label, className, title] of COLUMNS) {
      const th = element("th", className, label);
      th.scope = "col";
      if (title) th.title = title;
      headings.append(th);
    }
    const table = element("table");
    const thead = element("thead");
    thead.append(headings);
    table.append(thead, element("tbody"));
    section.append(head, table, element("p", "empty muted", "No evaluation episodes yet."));
    byId("boards").append(section);
    sections.set(envId, section);
    return section;
  }

  function countText(board) {
    const users = board.total_users === 1 ? "1 user" : `${board.total_users} users`;
    return board.rows.length < board.total_users ? `top ${board.rows.length} of ${users}` : users;
  }

  function render(data) {
    state.refreshMs = Math.max(1, data.refresh_seconds) * 1000;
    byId("sign-in").hidden = true;
    byId("explain").textContent =
      `Score: the mean return of a user's last ${data.score_window} evaluation episodes ` +
      "(provisional with fewer).";
    byId("account").hidden = !data.auth_required;
    byId("viewer").textContent = data.viewer.user;
    const context = {
      viewer: data.viewer.user,
      authRequired: data.auth_required,
      window: data.score_window,
    };
    for (const board of data.boards) {
      const section = boardSection(board.env_id);
      const span = timeSpan(board.rows);
      const rows = board.rows.map((row) => tableRow(row, { ...context, span }));
      section.querySelector("tbody").replaceChildren(...rows);
      section.querySelector(".count").textContent = countText(board);
      section.querySelector("table").hidden = rows.length === 0;
      section.querySelector(".empty").hidden = rows.length > 0;
    }
    state.lastUpdate = new Date();
    byId("status").textContent =
      `Updated ${formatClock(state.lastUpdate)}; refreshes every ${data.refresh_seconds} s.`;
    showNotice(data.boards.length ? "" : "No environment is evaluated on this server.");
  }

  function clearBoards() {
    sections.clear();
    byId("boards").replaceChildren();
    byId("status").textContent = "";
  }

  function showSignIn() {
    clearTimeout(state.timer);
    clearBoards();
    showNotice("");
    byId("account").hidden = true;
    byId("sign-in").hidden = false;
    byId("token").focus();
  }

  function showForbidden(body) {
    clearBoards();
    byId("account").hidden = !body.auth_required;
    if (body.viewer) byId("viewer").textContent = body.viewer.user;
    showNotice(`Not shown: ${body.error || "this leaderboard is for admins only"}.`);
  }

  function showStale(reason) {
    const since = state.lastUpdate ? ` The scores shown are from ${formatClock(state.lastUpdate)}.` : "";
    showNotice(`Not updated: ${reason}.${since} Retrying.`);
  }

  function schedule() {
    clearTimeout(state.timer);
    state.timer = setTimeout(refresh, state.refreshMs);
  }

  async function refresh() {
    clearTimeout(state.timer);
    if (document.hidden) {
      // Nobody looks: ask again when the tab is shown (see visibilitychange below).
      state.paused = true;
      return;
    }
    let response;
    let body;
    try {
      response = await fetch(API, {
        headers: { Accept: "application/json" },
        cache: "no-store",
        credentials: "same-origin",
      });
      body = await response.json();
    } catch {
      showStale(response ? `the server answered ${response.status}` : "the server cannot be reached");
      schedule();
      return;
    }
    if (response.status === 401) {
      showSignIn();
    } else if (response.status === 403) {
      showForbidden(body);
    } else if (!response.ok) {
      showStale(body.error || `the server answered ${response.status}`);
      schedule();
    } else {
      render(body);
      schedule();
    }
  }

  byId("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = byId("token");
    const token = input.value.trim();
    input.value = "";
    const error = byId("sign-in-error");
    error.hidden = true;
    let response;
    try {
      response = await fetch("/login", {
        method: "POST",
        headers: { Accept: "application/json" },
        body: new URLSearchParams({ token }),
        credentials: "same-origin",
      });
    } catch {
      error.textContent = "The server cannot be reached.";
      error.hidden = false;
      return;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      error.textContent = body.error ? `Not signed in: ${body.error}.` : `Not signed in (${response.status}).`;
      error.hidden = false;
      input.focus();
      return;
    }
    byId("sign-in").hidden = true;
    refresh();
  });

  byId("sign-out").addEventListener("click", async () => {
    clearTimeout(state.timer);
    await fetch("/logout", {
      method: "POST",
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    }).catch(() => null);
    showSignIn();
  });

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.paused) {
      state.paused = false;
      refresh();
    }
  });

  refresh();
})();
