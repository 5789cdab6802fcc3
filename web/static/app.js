// News QA chat page. No framework, no build step.
// SECURITY: everything that comes from the server (articles, answers) or the user is put into
// the page with textContent / createElement only. Never innerHTML with data.
"use strict";

(function () {
  const MAX_HISTORY = 20; // the API accepts at most 20 earlier turns
  const TOP_K = 3;
  const ASK_TIMEOUT_MS = 180000;
  const HEALTH_POLL_MS = 1500;
  const NO_ANSWER_TEXT = "I couldn't find that in the articles.";

  const $ = (id) => document.getElementById(id);
  const log = $("log");
  const form = $("ask-form");
  const input = $("question");
  const send = $("send");
  const statusBox = $("status");
  const statusText = $("status-text");
  const articlesBox = $("articles");
  const articlesList = $("articles-list");
  const articlesCount = $("articles-count");
  const articlesFilter = $("articles-filter");
  const articlesEmpty = $("articles-empty");

  const newChat = $("new-chat");
  const welcomeTemplate = $("welcome").cloneNode(true); // shown again by "New conversation"

  const history = []; // earlier turns, oldest first: {question, answer} (answer: the sure best answer, or null)
  let ready = false;
  let busy = false;
  let healthTimer = null;

  // ---- DOM helpers (text only) --------------------------------------------------------------
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [key, value] of Object.entries(attrs)) {
        if (value === null || value === undefined || value === false) continue;
        if (key === "class") node.className = value;
        else if (key === "text") node.textContent = value;
        else node.setAttribute(key, value === true ? "" : String(value));
      }
    }
    for (const child of [].concat(children || [])) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Only http(s) links: an article's url could be "javascript:..." and must not become a link.
  function safeUrl(url) {
    if (typeof url !== "string" || !url.trim()) return null;
    try {
      const parsed = new URL(url.trim(), window.location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (_) {
      return null;
    }
  }

  function titleOf(article) {
    return (article && article.title && String(article.title).trim()) || "Untitled article";
  }

  // Title as a link opening in a new tab when the article has a (safe) url, else plain text.
  function articleLink(article, className) {
    const href = safeUrl(article && article.url);
    const title = titleOf(article);
    if (!href) return el("span", { class: className, text: title });
    const a = el("a", { class: className, href, target: "_blank", rel: "noopener noreferrer", text: title });
    a.append(el("span", { class: "visually-hidden", text: " (opens in a new tab)" }));
    return a;
  }

  function formatDate(value) {
    if (!value) return null;
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(value));
    if (!m) return String(value);
    const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3]));
    if (isNaN(d.getTime())) return String(value);
    return d.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric", timeZone: "UTC" });
  }

  function dateNode(value) {
    const text = formatDate(value);
    if (!text) return null;
    return el("time", { datetime: /^\d{4}-\d{2}-\d{2}$/.test(String(value)) ? value : null, text });
  }

  function percent(score) {
    const n = Number(score);
    if (!isFinite(n)) return "?";
    const p = Math.round(Math.min(1, Math.max(0, n)) * 100);
    return p === 0 && n > 0 ? "<1%" : p + "%";
  }

  function scrollToEnd(node) {
    const target = node || log.lastElementChild;
    if (!target) return;
    const reduce = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    target.scrollIntoView({ block: "end", behavior: reduce ? "auto" : "smooth" });
  }

  // ---- status / readiness ---------------------------------------------------------------------
  function setStatus(kind, text) {
    statusBox.className = "status status-" + kind;
    statusText.textContent = text;
  }

  function setReady(value) {
    ready = value;
    document.body.classList.toggle("is-ready", value);
    input.disabled = !value;
    input.placeholder = value ? "Ask about the news…" : "Loading the models…";
    updateSend();
    for (const b of document.querySelectorAll(".example")) b.disabled = !value || busy;
  }

  function updateSend() {
    send.disabled = !ready || busy || !input.value.trim();
    newChat.disabled = busy || history.length === 0;
    send.setAttribute("aria-busy", busy ? "true" : "false");
    for (const b of document.querySelectorAll(".example")) b.disabled = !ready || busy;
  }

  async function pollHealth() {
    clearTimeout(healthTimer);
    let delay = HEALTH_POLL_MS;
    try {
      const res = await fetch("/healthz", { cache: "no-store", headers: { Accept: "application/json" } });
      const body = await res.json().catch(() => ({}));
      if (res.ok && body.status === "ready") {
        const n = Number(body.articles) || 0;
        setStatus("ready", "Ready · " + n + (n === 1 ? " article" : " articles"));
        const wasReady = ready;
        setReady(true);
        if (!wasReady) {
          loadArticles();
          if (!busy) input.focus({ preventScroll: true });
        }
        return;
      }
      if (body.status === "error") {
        setStatus("error", "The server could not load: " + (body.detail || "unknown error"));
        delay = 10000;
      } else {
        setStatus("loading", "Loading the models and the articles…");
      }
    } catch (_) {
      setStatus("error", "Cannot reach the server; retrying…");
      delay = 4000;
    }
    setReady(false);
    healthTimer = setTimeout(pollHealth, delay);
  }

  // ---- articles panel -------------------------------------------------------------------------
  // The archive can hold a million articles: the list is fetched a page at a time, and the
  // filter asks the server rather than searching what happens to be loaded.
  const PAGE_SIZE = 50;
  let articles = [];
  let articlesTotal = 0;
  let articlesQuery = "";
  const articlesMore = el("button", { type: "button", class: "articles-more", text: "Show more" });
  articlesMore.hidden = true;
  articlesList.after(articlesMore);

  async function loadArticles(append = false) {
    if (!append) articlesCount.textContent = "(loading…)";
    const params = new URLSearchParams({ offset: String(append ? articles.length : 0), limit: String(PAGE_SIZE) });
    if (articlesQuery) params.set("q", articlesQuery);
    try {
      const res = await fetch("/articles?" + params, { cache: "no-store", headers: { Accept: "application/json" } });
      if (!res.ok) throw new Error(await errorDetail(res));
      const data = await res.json();
      const page = Array.isArray(data.articles) ? data.articles : [];
      articles = append ? articles.concat(page) : page;
      articlesTotal = Number(data.total) || 0;
      articlesCount.textContent = String(articlesTotal);
      articlesCount.setAttribute("aria-label", articlesTotal + (articlesTotal === 1 ? " article" : " articles"));
      articlesFilter.disabled = false;
      renderArticles();
    } catch (err) {
      articlesCount.textContent = "(unavailable)";
      articlesList.replaceChildren(el("li", { class: "muted", text: "Could not load the list: " + err.message }));
    }
  }

  function renderArticles() {
    const frag = document.createDocumentFragment();
    for (const a of articles) {
      const meta = [dateNode(a.date), a.source ? el("span", { class: "src", text: a.source }) : null].filter(Boolean);
      const metaLine = el("span", { class: "meta" });
      meta.forEach((m, i) => {
        if (i) metaLine.append(" · ");
        metaLine.append(m);
      });
      frag.append(el("li", { "data-id": a.id }, [articleLink(a, "article-title"), meta.length ? metaLine : null]));
    }
    articlesList.replaceChildren(frag);
    articlesEmpty.hidden = articles.length > 0 || !articlesQuery;
    articlesMore.hidden = articles.length >= articlesTotal;
    articlesMore.textContent = "Show more (" + (articlesTotal - articles.length) + " left)";
  }

  let filterTimer = null;
  articlesFilter.addEventListener("input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      articlesQuery = articlesFilter.value.trim();
      loadArticles(false);
    }, 250);
  });
  articlesMore.addEventListener("click", () => loadArticles(true));

  // Open the list beside the chat on wide screens; behind its toggle on phones.
  const wide = window.matchMedia("(min-width: 900px)");
  articlesBox.open = wide.matches;

  // ---- chat -----------------------------------------------------------------------------------
  function addMessage(node) {
    const welcome = $("welcome");
    if (welcome) welcome.remove();
    log.append(node);
    scrollToEnd(node);
    return node;
  }

  function userMessage(text) {
    return el("div", { class: "msg msg-user" }, [
      el("span", { class: "visually-hidden", text: "You asked: " }),
      el("p", { class: "bubble", text }),
    ]);
  }

  function thinkingMessage() {
    return el("div", { class: "msg msg-bot thinking" }, [
      el("div", { class: "card" }, [
        el("span", { class: "dots", "aria-hidden": "true" }, [el("span"), el("span"), el("span")]),
        el("span", { text: "Thinking…" }),
      ]),
    ]);
  }

  // The passage with the answer wrapped in <mark>, at its exact offsets in the article.
  function passageNode(answer) {
    // Offsets are Python code points; index an array of code points, not UTF-16 units,
    // so an emoji or other astral character before the answer does not shift the highlight.
    const chars = Array.from(String(answer.passage || ""));
    let s = Number(answer.start) - Number(answer.passage_start);
    let e = Number(answer.end) - Number(answer.passage_start);
    const valid = Number.isInteger(s) && Number.isInteger(e) && s >= 0 && e > s && e <= chars.length;
    if (!valid) {
      // Offsets that do not fit the passage: fall back to the first occurrence of the text.
      const text = Array.from(String(answer.text || ""));
      s = -1;
      for (let i = 0; text.length && i + text.length <= chars.length; i++) {
        if (chars.slice(i, i + text.length).join("") === text.join("")) { s = i; break; }
      }
      e = s >= 0 ? s + text.length : -1;
    }
    const block = el("blockquote", { class: "passage" });
    if (s >= 0 && e > s) {
      block.append(chars.slice(0, s).join(""), el("mark", { text: chars.slice(s, e).join("") }), chars.slice(e).join(""));
    } else {
      block.textContent = chars.join("");
    }
    return block;
  }

  // "as of <date>": news goes out of date, so every answer says when its article said so.
  function asOfNode(article) {
    const date = dateNode(article && article.date);
    return el("span", { class: "as-of" }, date ? ["as of ", date] : ["date unknown"]);
  }

  function sourceNode(article) {
    const parts = [articleLink(article, "source-title")];
    const date = dateNode(article.date);
    if (date) parts.push(" · ", date);
    if (article.source) parts.push(" · ", el("span", { class: "src", text: article.source }));
    return el("p", { class: "source" }, [el("span", { class: "source-label", text: "Source: " }), ...parts]);
  }

  // The calibrated confidence when the server has one (how often answers scored like this were
  // right on SQuAD dev); else the raw score, labelled as such: it is not a chance of being right.
  function confidenceNode(answer) {
    const calibrated = answer.confidence !== null && answer.confidence !== undefined;
    const value = calibrated ? answer.confidence : answer.score;
    const p = Math.round(Math.min(1, Math.max(0, Number(value) || 0)) * 100);
    const level = p >= 70 ? "high" : p >= 40 ? "mid" : "low";
    const title = calibrated
      ? "Answers scored like this were right " + percent(value) + " of the time in testing (score " + Number(answer.score).toFixed(2) + ")"
      : "Reader score, not calibrated";
    return el("span", { class: "confidence confidence-" + level, title },
      (calibrated ? "confidence " : "score ") + percent(value));
  }

  // What the server read from the question: a period ("as of 2015") applied as a date filter,
  // or ("in 2015") answers from articles dated in it put first.
  function periodNote(period) {
    if (!period) return null;
    const from = formatDate(period.date_from), to = formatDate(period.date_to);
    const range = from && to ? from + " – " + to : from ? "from " + from : "up to " + to;
    const how = period.filtered ? "Articles dated " + range + " and undated ones" : "Answers from articles dated " + range + " first";
    return el("p", { class: "note", text: how + " (“" + period.phrase + "”)." });
  }

  // Below the confidence cut: no answer in large type, but the best candidates side by side,
  // each with its source and passage, so the reader can judge.
  function unsureCard(data, answers) {
    const list = el("ol", { class: "candidates" });
    for (const a of answers) {
      list.append(el("li", { class: "candidate" }, [
        el("div", { class: "candidate-head" }, [
          el("span", { class: "candidate-text", text: a.text }), " ", confidenceNode(a), " ", asOfNode(a.article),
        ]),
        sourceNode(a.article || {}),
        el("details", { class: "candidate-passage" }, [el("summary", { text: "Passage" }), passageNode(a)]),
      ]));
    }
    return el("article", { class: "card card-unsure", "aria-label": "Unsure: candidate answers" }, [
      el("p", { class: "unsure-title", text: data.message || "I'm not sure. The best candidates:" }),
      data.newest_first ? el("p", { class: "note", text: "The newest article first: the question asks about the present." }) : null,
      periodNote(data.period),
      list,
    ]);
  }

  function answerMessage(data) {
    const answers = Array.isArray(data.answers) ? data.answers : [];
    if (data.no_answer || answers.length === 0) {
      return el("div", { class: "msg msg-bot" }, [
        el("div", { class: "card card-none" }, [
          el("p", { class: "no-answer", text: data.message || NO_ANSWER_TEXT }),
          periodNote(data.period),
          el("p", { class: "hint", text: "Try other words, or check the list of articles." }),
        ]),
      ]);
    }
    if (data.unsure) return el("div", { class: "msg msg-bot" }, [unsureCard(data, answers)]);
    const [best, ...others] = answers;
    const card = el("article", { class: "card card-answer", "aria-label": "Answer" }, [
      el("div", { class: "answer-head" }, [el("p", { class: "answer-text", text: best.text }), asOfNode(best.article), confidenceNode(best)]),
      data.newest_first ? el("p", { class: "note", text: "The newest article first: the question asks about the present." }) : null,
      periodNote(data.period),
      sourceNode(best.article || {}),
      passageNode(best),
    ]);
    if (others.length) {
      const list = el("ol", { class: "others-list" });
      for (const a of others) {
        list.append(el("li", null, [
          el("details", { class: "other" }, [
            el("summary", null, [
              el("span", { class: "other-text", text: a.text }),
              " ",
              confidenceNode(a),
              el("span", { class: "other-src" }, [" — ", titleOf(a.article)]),
            ]),
            sourceNode(a.article || {}),
            passageNode(a),
          ]),
        ]));
      }
      card.append(el("section", { class: "others", "aria-label": "Other possible answers" }, [
        el("h3", { text: "Other possible answers" }),
        list,
      ]));
    }
    return el("div", { class: "msg msg-bot" }, [card]);
  }

  function errorMessage(text, retryQuestion) {
    const card = el("div", { class: "card card-error", role: "alert" }, [
      el("p", { class: "error-title", text: "Something went wrong" }),
      el("p", { class: "error-text", text }),
    ]);
    if (retryQuestion) {
      const retry = el("button", { type: "button", class: "retry", text: "Try again" });
      retry.addEventListener("click", () => {
        if (!ready || busy) return;
        card.parentElement.remove();
        ask(retryQuestion, { echo: false });
      });
      card.append(retry);
    }
    return el("div", { class: "msg msg-bot" }, [card]);
  }

  async function errorDetail(res) {
    let detail = "";
    try {
      const body = await res.clone().json();
      if (typeof body.detail === "string") detail = body.detail;
      else if (Array.isArray(body.detail)) detail = body.detail.map((d) => (d && d.msg) || String(d)).join("; ");
      else if (body.detail) detail = JSON.stringify(body.detail);
    } catch (_) {
      detail = "";
    }
    return (detail || res.statusText || "request failed") + " (HTTP " + res.status + ")";
  }

  async function ask(question, opts) {
    const echo = !opts || opts.echo !== false;
    if (!ready || busy) return;
    busy = true;
    updateSend();
    if (echo) addMessage(userMessage(question));
    const thinking = addMessage(thinkingMessage());
    log.setAttribute("aria-busy", "true");

    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), ASK_TIMEOUT_MS);
    let reply;
    try {
      const res = await fetch("/ask", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ question, top_k: TOP_K, history: history.slice(-MAX_HISTORY) }),
        signal: controller.signal,
      });
      if (res.ok) {
        const data = await res.json();
        // The answer goes along with the question: "When was he born?" then searches with the name.
        const sure = !data.no_answer && !data.unsure && Array.isArray(data.answers) && data.answers.length;
        history.push({ question, answer: sure ? String(data.answers[0].text).slice(0, 1000) : null });
        if (history.length > MAX_HISTORY) history.splice(0, history.length - MAX_HISTORY);
        reply = answerMessage(data);
      } else {
        const detail = await errorDetail(res);
        reply = errorMessage(detail, res.status >= 500 ? question : null);
        if (res.status === 503 && /loading|not ready/i.test(detail)) {
          setReady(false);
          pollHealth();
        }
      }
    } catch (err) {
      const text = err && err.name === "AbortError"
        ? "The server took too long to answer."
        : "Could not reach the server. Check that it is running, then try again.";
      reply = errorMessage(text, question);
    } finally {
      clearTimeout(timer);
    }
    thinking.replaceWith(reply);
    log.removeAttribute("aria-busy");
    scrollToEnd(reply);
    busy = false;
    updateSend();
    if (ready) input.focus({ preventScroll: true });
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 200) + "px";
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const question = input.value.trim();
    if (!question || !ready || busy) return;
    input.value = "";
    autosize();
    ask(question);
  });

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!send.disabled) form.requestSubmit();
    }
  });

  input.addEventListener("input", () => {
    autosize();
    updateSend();
  });

  // A new conversation: earlier questions no longer steer follow-ups.
  newChat.addEventListener("click", () => {
    if (busy) return;
    history.length = 0;
    log.replaceChildren(welcomeTemplate.cloneNode(true));
    updateSend();
    input.focus({ preventScroll: true });
  });

  log.addEventListener("click", (event) => {
    const button = event.target.closest(".example");
    if (!button || !ready || busy) return;
    ask(button.textContent.trim());
  });

  setReady(false);
  pollHealth();
})();
