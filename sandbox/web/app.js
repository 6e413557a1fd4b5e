// The sandbox's web chat: one customer's private chat with the bot beside the agents' forum group.
// Everything goes through the emulator's control API (/control/...); /control/events (server-sent
// events) says when something changed, and the page then reloads what it shows.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const GENERAL = 1;
const WINDOW = 300; // messages shown per chat, as a chat window keeps the latest
const params = new URLSearchParams(location.search);
const stored = (key) => params.get(key) ?? localStorage.getItem("sandbox." + key);
const remember = (key, value) => localStorage.setItem("sandbox." + key, String(value));

const view = {
  dir: null,            // GET /control/directory
  userId: null,         // the customer played
  groupId: null,        // the agents' supergroup shown
  agentId: null,        // the member played in it
  threadId: null,       // the topic shown (1: General)
  seen: new Map(),      // "group:thread" -> message count when last looked at (for unread badges)
  pending: new Map(),   // callback_query_id -> {button, until}
  lang: "en",           // the page's own language: "zh" or "en" (PAGE_STRINGS in i18n.js)
  live: "connecting",   // the live feed's state, shown in the top bar
};

// ---- the page's language ------------------------------------------------------------------------

const pageLangOf = (code) => (String(code || "").toLowerCase().startsWith("zh") ? "zh" : "en");
view.lang = pageLangOf(stored("lang") || navigator.language);

function t(key, vars = {}) {
  const text = PAGE_STRINGS[view.lang][key] ?? PAGE_STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

function applyPageTexts() {
  // The static labels of index.html: data-i18n (text), data-i18n-placeholder / -title / -aria-label.
  document.documentElement.lang = view.lang === "zh" ? "zh-Hans" : "en";
  document.title = t("title");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const [attr, key] of [["placeholder", "i18nPlaceholder"], ["title", "i18nTitle"], ["aria-label", "i18nAriaLabel"]]) {
    for (const el of document.querySelectorAll(`[data-i18n-${attr}]`)) el.setAttribute(attr, t(el.dataset[key]));
  }
  for (const b of document.querySelectorAll("#lang-toggle button")) {
    b.setAttribute("aria-pressed", String(pageLangOf(b.dataset.lang) === view.lang));
  }
  showLive();
}

function setPageLang(lang) {
  if (lang === view.lang) return;
  view.lang = lang;
  remember("lang", lang);
  applyPageTexts();
  refresh();
}

// ---- times, in the platform's zone ----------------------------------------------------------------
// The emulator's owner names the zone (GET /control/directory: timezone, e.g. Asia/Shanghai); without
// one the browser's own zone is used.

const formatters = new Map();

function formatter(kind) {
  const zone = (view.dir && view.dir.timezone) || undefined;
  const key = `${kind}|${view.lang}|${zone}`;
  if (!formatters.has(key)) {
    const options = kind === "time" ? { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }
      : { dateStyle: "medium", timeStyle: "long" };
    let f;
    try {
      f = new Intl.DateTimeFormat(PAGE_LOCALES[view.lang], { ...options, timeZone: zone });
    } catch { // a zone this browser does not know: its own zone rather than no page
      f = new Intl.DateTimeFormat(PAGE_LOCALES[view.lang], options);
    }
    formatters.set(key, f);
  }
  return formatters.get(key);
}

const time = (ts) => formatter("time").format(new Date(ts * 1000));
const fullTime = (ts) => formatter("full").format(new Date(ts * 1000));

// ---- HTTP ---------------------------------------------------------------------------------------

async function control(method, path, body) {
  const init = { method, headers: {} };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch("/control/" + path, init);
  let data = null;
  try { data = await resp.json(); } catch { /* not JSON */ }
  if (!resp.ok) throw new Error((data && data.error) || `${resp.status} ${resp.statusText}`);
  return data;
}

const query = (o) => new URLSearchParams(Object.entries(o).filter(([, v]) => v !== null && v !== undefined)).toString();

// ---- toasts -------------------------------------------------------------------------------------

function toast(text, kind = "", ms = 3500) {
  const el = document.createElement("div");
  el.className = "toast " + kind;
  el.textContent = text;
  const close = document.createElement("button");
  close.type = "button";
  close.textContent = t("ok");
  close.addEventListener("click", () => el.remove());
  el.append(close);
  $("#toasts").append(el);
  if (kind !== "alert") setTimeout(() => el.remove(), ms);
  else close.focus();
  return el;
}
const fail = (err) => toast(String(err.message || err), "error", 6000);

// ---- names --------------------------------------------------------------------------------------

function userById(id) {
  const d = view.dir;
  if (!d) return null;
  if (id === d.bot.id) return { id, name: d.bot.first_name, is_bot: true };
  return d.users.find((u) => u.id === id) || null;
}
const nameOf = (id) => (userById(id) || {}).name || String(id);
const NAME_COLORS = ["#e17076", "#eda86c", "#a695e7", "#7bc862", "#6ec9cb", "#65aadd", "#ee7aae"];
const colorOf = (id) => NAME_COLORS[Math.abs(Number(id)) % NAME_COLORS.length];
const hex = (n) => "#" + Number(n).toString(16).padStart(6, "0");

function groupOf(id) {
  return view.dir ? view.dir.groups.find((g) => g.id === id) || null : null;
}

// ---- message text with entities ----------------------------------------------------------------
// Entity offsets count UTF-16 code units, which is what JavaScript strings index: no conversion.

const LINKS = new Set(["url", "text_link", "email", "mention", "text_mention", "phone_number"]);

function entityHref(e, text) {
  const inner = text.slice(e.offset, e.offset + e.length);
  switch (e.type) {
    case "text_link": return e.url;
    case "url": return /^[a-z]+:\/\//i.test(inner) ? inner : "http://" + inner;
    case "email": return "mailto:" + inner;
    case "phone_number": return "tel:" + inner;
    case "mention": return "https://t.me/" + inner.slice(1);
    case "text_mention": return "tg://user?id=" + (e.user && e.user.id);
    default: return null;
  }
}

function renderText(text, entities) {
  const out = document.createElement("div");
  out.className = "text";
  if (!entities || !entities.length) {
    out.textContent = text;
    return out;
  }
  const cuts = new Set([0, text.length]);
  for (const e of entities) {
    cuts.add(Math.max(0, Math.min(text.length, e.offset)));
    cuts.add(Math.max(0, Math.min(text.length, e.offset + e.length)));
  }
  const points = [...cuts].sort((a, b) => a - b);
  for (let i = 0; i + 1 < points.length; i++) {
    const a = points[i], b = points[i + 1];
    const piece = text.slice(a, b);
    const active = entities.filter((e) => e.offset <= a && e.offset + e.length >= b);
    if (!active.length) { out.append(piece); continue; }
    const link = active.find((e) => LINKS.has(e.type));
    const el = document.createElement(link ? "a" : "span");
    if (link) {
      el.href = entityHref(link, text);
      el.target = "_blank";
      el.rel = "noopener noreferrer";
    }
    el.className = active.map((e) => "e-" + e.type).join(" ");
    if (active.some((e) => e.type === "spoiler")) el.tabIndex = 0;
    el.textContent = piece;
    out.append(el);
  }
  return out;
}

// ---- one message --------------------------------------------------------------------------------

function size(n) {
  if (n == null) return "";
  if (n < 1024) return n + " B";
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
  return (n / 1024 / 1024).toFixed(1) + " MB";
}

function preview(m) {
  if (!m) return "";
  if (m.text) return m.text;
  if (m.caption) return "🖼 " + m.caption;
  if (m.kind === "service") return "";
  return PAGE_STRINGS.en["kind." + m.kind] ? t("kind." + m.kind) : m.kind;
}

function serviceText(m) {
  const actor = nameOf(m.from_id);
  if (m.forum_topic_created) return t("svc.created", { actor, name: m.forum_topic_created.name });
  if (m.forum_topic_edited) {
    return m.forum_topic_edited.name ? t("svc.renamed", { actor, name: m.forum_topic_edited.name })
      : t("svc.icon", { actor });
  }
  if (m.forum_topic_closed) return t("svc.closed", { actor });
  if (m.forum_topic_reopened) return t("svc.reopened", { actor });
  if (m.general_forum_topic_hidden) return t("svc.general_hidden", { actor });
  if (m.general_forum_topic_unhidden) return t("svc.general_unhidden", { actor });
  if (m.new_chat_members) {
    const names = m.new_chat_members.map((u) => u.first_name).join(", ");
    return m.new_chat_members.length === 1 && m.new_chat_members[0].id === m.from_id
      ? t("svc.joined", { names }) : t("svc.added", { actor, names });
  }
  if (m.left_chat_member) {
    const name = m.left_chat_member.first_name;
    return m.left_chat_member.id === m.from_id ? t("svc.left", { name }) : t("svc.removed", { actor, name });
  }
  if (m.pinned_message) return t("svc.pinned", { actor });
  return t("svc.other");
}

function renderKeyboard(m, ctx) {
  const rows = (m.reply_markup && m.reply_markup.inline_keyboard) || [];
  if (!rows.length) return null;
  const box = document.createElement("div");
  box.className = "keyboard";
  for (const row of rows) {
    const line = document.createElement("div");
    line.className = "row";
    for (const b of row) {
      let el;
      if (b.url || (b.login_url && b.login_url.url)) {
        el = document.createElement("a");
        el.href = b.url || b.login_url.url;
        el.target = "_blank";
        el.rel = "noopener noreferrer";
        el.className = "inline-btn url";
      } else {
        el = document.createElement("button");
        el.type = "button";
        el.className = "inline-btn";
        if (b.callback_data !== undefined) {
          el.addEventListener("click", () => ctx.press(m, b, el));
        } else if (b.copy_text) {
          el.addEventListener("click", () => navigator.clipboard.writeText(b.copy_text.text)
            .then(() => toast(t("copied")), fail));
        } else {
          el.disabled = true;
          el.title = t("unsupported");
        }
      }
      el.textContent = b.text;
      line.append(el);
    }
    box.append(line);
  }
  return box;
}

function renderMessage(m, ctx) {
  const el = document.createElement("div");
  el.dataset.messageId = m.message_id;
  el.dataset.edits = m.edits || 0;
  if (m.kind === "service") {
    el.className = "msg service";
    const pill = document.createElement("span");
    pill.textContent = serviceText(m);
    el.append(pill);
    return el;
  }
  const mine = m.from_id === ctx.viewerId;
  el.className = "msg " + (mine ? "out" : "in") + (m.from_bot ? " from-bot" : "") + (m.kind === "sticker" ? " sticker" : "");
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  if (ctx.showSenders && !mine) {
    const who = document.createElement("div");
    who.className = "sender";
    who.style.color = colorOf(m.from_id);
    who.textContent = nameOf(m.from_id);
    const member = ctx.members && ctx.members.get(m.from_id);
    const title = member && (member.custom_title || (["creator", "administrator"].includes(member.status) ? t("status." + member.status) : ""));
    if (title) {
      const badge = document.createElement("span");
      badge.className = "title";
      badge.textContent = title;
      who.append(badge);
    }
    bubble.append(who);
  }
  const replied = m.reply_to_message_id && m.reply_to_message_id !== ctx.rootId ? ctx.byId.get(m.reply_to_message_id) : null;
  if (m.reply_to_message_id && m.reply_to_message_id !== ctx.rootId) {
    const q = document.createElement("button");
    q.type = "button";
    q.className = "quote";
    const b = document.createElement("b");
    b.textContent = replied ? nameOf(replied.from_id) : t("reply");
    const s = document.createElement("span");
    s.textContent = replied ? preview(replied) : t("reply.missing", { id: m.reply_to_message_id });
    q.append(b, s);
    q.addEventListener("click", () => {
      const target = ctx.container.querySelector(`[data-message-id="${m.reply_to_message_id}"]`);
      if (target) { target.scrollIntoView({ block: "center" }); target.classList.remove("flash"); void target.offsetWidth; target.classList.add("flash"); }
    });
    bubble.append(q);
  }
  const fileUrl = m.file_id ? "/control/file?" + query({ file_id: m.file_id }) : null;
  // A picture sent as a file (an album's fallback when photos are refused) still shows the picture.
  const picture = fileUrl && (m.kind === "photo" || (m.kind === "document" && /^image\//.test(m.mime_type || "")
    && m.width && m.height));
  if (picture) {
    const img = document.createElement("img");
    img.className = "photo";
    img.src = fileUrl;
    img.alt = m.caption || m.file_name || t("photo");
    if (m.width && m.height) { img.width = m.width; img.height = m.height; img.style.height = "auto"; }
    bubble.append(img);
    if (m.kind === "document") {
      const name = document.createElement("small");
      name.className = "file-name";
      name.textContent = `📄 ${m.file_name || t("file")} · ${size(m.file_size)}`;
      bubble.append(name);
    }
  } else if (m.kind === "video" && fileUrl) {
    const v = document.createElement("video");
    v.className = "photo";
    v.controls = true;
    v.preload = "metadata";
    v.src = fileUrl;
    if (m.width && m.height) { v.width = m.width; v.height = m.height; v.style.height = "auto"; }
    bubble.append(v);
  } else if (m.kind === "sticker") {
    const s = document.createElement("div");
    s.className = "sticker";
    s.textContent = m.emoji || "🖼";
    bubble.append(s);
  } else if (m.kind !== "text" && fileUrl) {
    const a = document.createElement("a");
    a.className = "file";
    a.href = fileUrl;
    a.target = "_blank";
    a.rel = "noopener";
    const icon = document.createElement("span");
    icon.className = "icon";
    icon.textContent = m.kind === "voice" ? "🎤" : "📄";
    const label = document.createElement("span");
    label.textContent = m.kind === "voice" ? t("voice") : (m.file_name || m.kind);
    const small = document.createElement("small");
    small.textContent = m.kind === "voice" ? `0:${String(m.duration || 0).padStart(2, "0")}` : `${size(m.file_size)} ${m.mime_type || ""}`;
    label.append(small);
    a.append(icon, label);
    bubble.append(a);
  } else if (m.kind === "location" && m.location) {
    bubble.append(renderText(`📍 ${m.location.latitude.toFixed(4)}, ${m.location.longitude.toFixed(4)}`));
  } else if (m.kind !== "text") {
    bubble.append(renderText(`[${m.kind}]`));
  }
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = (m.edits ? t("edited") + " " : "") + time(m.edit_date || m.date) + (mine ? " ✓✓" : "");
  meta.title = fullTime(m.edit_date || m.date);
  const body = m.text ?? m.caption;
  if (body) {
    const textEl = renderText(body, m.text != null ? m.entities : m.caption_entities);
    textEl.append(meta);
    bubble.append(textEl);
  } else {
    bubble.append(meta);
  }
  el.append(bubble);
  const kb = renderKeyboard(m, ctx);
  if (kb) el.append(kb);
  return el;
}

// ---- a list of messages, updated in place --------------------------------------------------------

// Opening a case's topic shows its card (the topic's first message), as Telegram opens a chat at its first
// unread message: until the viewer scrolls or sends, later messages (the evidence album) show only as far
// as the card stays in view.
class ChatView {
  constructor(container, emptyKey) {
    this.container = container;
    this.emptyKey = emptyKey;
    this.key = null;
    this.anchor = false; // keep the first message in view (set on opening a case topic)
    this.rendered = new Map(); // message_id -> {sig, el, edits}
    for (const ev of ["wheel", "touchstart", "keydown", "mousedown"]) {
      container.addEventListener(ev, () => { this.anchor = false; }, { passive: true });
    }
  }

  show(key, messages, ctx) {
    const fresh = key !== this.key;
    if (fresh) {
      this.key = key;
      this.anchor = Boolean(ctx.anchorFirst);
      this.rendered.clear();
      this.container.replaceChildren();
    }
    if (ctx.followMine) this.anchor = false;
    const box = this.container;
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    const visible = messages.filter((m) => !m.deleted);
    ctx.byId = new Map(messages.map((m) => [m.message_id, m]));
    ctx.container = box;
    const keep = new Set();
    let added = false;
    let cursor = null;
    // The page's language and time zone are part of what a bubble shows: a switch redraws it in place.
    const look = [view.lang, view.dir && view.dir.timezone];
    for (const m of visible) {
      const replied = m.reply_to_message_id ? ctx.byId.get(m.reply_to_message_id) : null;
      const sig = JSON.stringify([m, ctx.viewerId, replied ? preview(replied) : null, look]);
      let entry = this.rendered.get(m.message_id);
      if (!entry || entry.sig !== sig) {
        const el = renderMessage(m, ctx);
        if (entry) {
          if ((m.edits || 0) > entry.edits) el.classList.add("flash");
          entry.el.replaceWith(el);
        } else {
          added = true;
        }
        entry = { sig, el, edits: m.edits || 0 };
        this.rendered.set(m.message_id, entry);
      }
      keep.add(m.message_id);
      const expected = cursor ? cursor.nextSibling : box.firstChild;
      if (expected !== entry.el) box.insertBefore(entry.el, expected);
      cursor = entry.el;
    }
    for (const [id, entry] of this.rendered) {
      if (!keep.has(id)) { entry.el.remove(); this.rendered.delete(id); }
    }
    markAlbums(visible, this.rendered);
    let empty = box.querySelector(":scope > .empty");
    if (!visible.length && !empty) {
      empty = document.createElement("div");
      empty.className = "empty";
      box.append(empty);
    } else if (visible.length && empty) {
      empty.remove();
    }
    if (!visible.length) empty.textContent = t(this.emptyKey);
    const first = this.anchor ? box.querySelector(":scope > .msg:not(.service)") : null;
    if (first) {
      // The browser stops at the bottom by itself: the newest as far as the card stays on top.
      box.scrollTop += first.getBoundingClientRect().top - box.getBoundingClientRect().top - 6;
    } else if (fresh || (added && (nearBottom || ctx.followMine))) {
      box.scrollTop = box.scrollHeight;
    }
  }

  clear(text) {
    this.key = null;
    this.rendered.clear();
    const e = document.createElement("div");
    e.className = "empty";
    e.textContent = text;
    this.container.replaceChildren(e);
  }
}

function markAlbums(visible, rendered) {
  // The messages of one media group sit together as one album: no gaps, one rounded outline.
  for (let i = 0; i < visible.length; i++) {
    const group = visible[i].media_group_id;
    const el = rendered.get(visible[i].message_id).el;
    const prev = i > 0 && group && visible[i - 1].media_group_id === group;
    const next = i + 1 < visible.length && group && visible[i + 1].media_group_id === group;
    el.classList.toggle("album", Boolean(group));
    el.classList.toggle("album-first", Boolean(group) && !prev);
    el.classList.toggle("album-last", Boolean(group) && !next);
    if (group) el.dataset.album = group;
  }
}

const customerView = new ChatView($("#customer-messages"), "empty.customer");
const groupView = new ChatView($("#group-messages"), "empty.topic");

// ---- pickers ------------------------------------------------------------------------------------

function fillSelect(select, groups, selected) {
  // groups: [[label or null, [[value, text], ...]], ...]; keeps focus and selection when nothing changed
  const sig = JSON.stringify(groups);
  if (select.dataset.sig !== sig) {
    select.dataset.sig = sig;
    select.replaceChildren();
    for (const [label, options] of groups) {
      const parent = label ? document.createElement("optgroup") : select;
      if (label) { parent.label = label; select.append(parent); }
      for (const [value, text] of options) {
        const o = document.createElement("option");
        o.value = String(value);
        o.textContent = text;
        parent.append(o);
      }
    }
  }
  select.value = selected == null ? "" : String(selected);
  select.disabled = !groups.some(([, options]) => options.length);
}

function pickDefaults() {
  const d = view.dir;
  const customers = d.users.filter((u) => !u.groups.length);
  if (!d.users.some((u) => u.id === view.userId)) {
    const want = Number(stored("user"));
    view.userId = (d.users.find((u) => u.id === want) || customers[0] || d.users[0] || {}).id ?? null;
  }
  if (!groupOf(view.groupId)) {
    const want = Number(stored("group"));
    const groups = d.groups;
    view.groupId = (groups.find((g) => g.id === want) || groups.find((g) => g.is_forum) || groups[0] || {}).id ?? null;
    view.threadId = null;
    view.agentId = null;
  }
  const group = groupOf(view.groupId);
  if (group) {
    const people = group.members.filter((m) => !m.is_bot);
    if (!people.some((m) => m.user_id === view.agentId)) {
      const want = Number(stored("agent"));
      const rank = { creator: 1, administrator: 0, member: 2, restricted: 3 };
      const sorted = [...people].sort((a, b) => (rank[a.status] ?? 9) - (rank[b.status] ?? 9));
      view.agentId = (people.find((m) => m.user_id === want) || sorted[0] || {}).user_id ?? null;
    }
    if (!group.topics.some((t) => t.message_thread_id === view.threadId)) {
      const want = Number(stored("topic"));
      const topics = group.topics;
      view.threadId = (topics.find((t) => t.message_thread_id === want) || topics.find((t) => !t.is_general) || topics[0]).message_thread_id;
    }
  } else {
    view.agentId = view.threadId = null;
  }
}

function renderPickers() {
  const d = view.dir;
  $("#bot-id").textContent = `${d.bot.first_name} · @${d.bot.username}`;
  const label = (u) => `${u.name} (${u.id})`;
  const customers = d.users.filter((u) => !u.groups.length).map((u) => [u.id, label(u)]);
  const members = d.users.filter((u) => u.groups.length).map((u) => [u.id, label(u)]);
  fillSelect($("#customer-select"), [[customers.length && members.length ? t("customers") : null, customers],
    [members.length ? t("members") : null, members]].filter(([, o]) => o.length), view.userId);
  fillSelect($("#group-select"), [[null, d.groups.map((g) => [g.id, g.is_forum ? g.title : t("group.not_forum", { title: g.title })])]], view.groupId);
  const group = groupOf(view.groupId);
  const status = (s) => (s === "member" ? "" : " · " + (PAGE_STRINGS.en["status." + s] ? t("status." + s) : s));
  const agents = group ? group.members.filter((m) => !m.is_bot).map((m) => [m.user_id, `${m.name} (${m.user_id})${status(m.status)}`]) : [];
  fillSelect($("#agent-select"), [[null, agents]], view.agentId);

  const user = userById(view.userId);
  const code = (user && user.language_code) || "";
  $("#lang-toggle").title = user ? t("lang.title", { code: code || t("lang.none") }) : "";
  $("#customer-chat-title").textContent = d.bot.first_name;
  $("#customer-avatar").textContent = d.bot.first_name.slice(0, 1);
  $("#customer-chat-sub").textContent = user ? t(user.blocked_bot ? "chat.sub.blocked" : "chat.sub", { name: user.name })
    : t("chat.sub.none");
}

function renderTopics() {
  const list = $("#topic-list");
  const group = groupOf(view.groupId);
  if (!group) {
    list.replaceChildren();
    $("#topic-title").textContent = t("group.none");
    $("#topic-sub").textContent = "";
    return;
  }
  const focusedThread = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.thread : null;
  list.replaceChildren();
  for (const topic of group.topics) {
    if (topic.is_general && topic.hidden) continue;
    const key = `${group.id}:${topic.message_thread_id}`;
    if (topic.message_thread_id === view.threadId || !view.seen.has(key)) view.seen.set(key, topic.messages);
    const unread = topic.messages - view.seen.get(key);
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "topic";
    b.dataset.thread = topic.message_thread_id;
    b.setAttribute("aria-current", String(topic.message_thread_id === view.threadId));
    const icon = document.createElement("span");
    icon.className = "avatar topic-icon";
    icon.setAttribute("aria-hidden", "true");
    icon.textContent = topic.is_general ? "#" : (topic.name.slice(0, 1) || "?");
    if (!topic.is_general) icon.style.background = hex(topic.icon_color);
    const body = document.createElement("span");
    body.className = "body";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = topic.name + (topic.closed ? " 🔒" : "");
    const last = document.createElement("small");
    last.textContent = topic.last ? (topic.last.kind === "service" ? "—" : `${nameOf(topic.last.from_id)}: ${topic.last.text ?? preview(topic.last)}`) : "";
    body.append(name, last);
    b.append(icon, body);
    if (unread > 0) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = unread;
      badge.setAttribute("aria-label", t("topic.unread", { count: unread }));
      b.append(badge);
    }
    b.addEventListener("click", () => selectTopic(topic.message_thread_id));
    li.append(b);
    list.append(li);
    if (String(topic.message_thread_id) === focusedThread) b.focus();
  }
  const topic = group.topics.find((x) => x.message_thread_id === view.threadId);
  $("#topic-title").textContent = topic ? topic.name : group.title;
  $("#topic-avatar").textContent = topic && !topic.is_general ? topic.name.slice(0, 1) : "#";
  $("#topic-avatar").style.background = topic && !topic.is_general ? hex(topic.icon_color) : "";
  $("#topic-sub").textContent = t(topic && topic.closed ? "topic.sub.closed" : "topic.sub",
    { title: group.title, count: group.members.length });
}

// ---- loading ------------------------------------------------------------------------------------

let loading = null;
let again = false;

function refresh() {
  if (loading) { again = true; return loading; }
  loading = (async () => {
    try {
      do { again = false; await load(); } while (again);
    } catch (err) {
      fail(err);
    } finally {
      loading = null;
    }
  })();
  return loading;
}

async function load() {
  view.dir = await control("GET", "directory");
  pickDefaults();
  renderPickers();
  renderTopics();
  const group = groupOf(view.groupId);
  const [mine, topic] = await Promise.all([
    view.userId == null ? null : control("GET", "chat?" + query({ chat_id: view.userId, last: WINDOW })),
    group ? control("GET", "chat?" + query({ chat_id: group.id, message_thread_id: view.threadId, last: WINDOW })) : null,
  ]);
  if (mine) {
    customerView.show(`u${view.userId}`, mine, { viewerId: view.userId, showSenders: false, rootId: null,
      press: pressAs(() => view.userId, null), followMine: customerView.followMine });
    customerView.followMine = false;
    renderReplyKeyboard(mine);
    $("#customer-start").hidden = mine.some((m) => !m.deleted);
  } else {
    customerView.clear(t("empty.no_users"));
    $("#customer-start").hidden = true;
  }
  if (topic) {
    const members = new Map(group.members.map((m) => [m.user_id, m]));
    const root = view.threadId === GENERAL ? null : view.threadId;
    groupView.show(`g${group.id}:${view.threadId}`, topic, { viewerId: view.agentId, showSenders: true, rootId: root,
      members, press: pressAs(() => view.agentId, group.id), followMine: groupView.followMine, anchorFirst: root != null });
    groupView.followMine = false;
  } else {
    groupView.clear(t("empty.no_group"));
  }
  setComposer("#customer-composer", view.userId != null);
  setComposer("#group-composer", group != null && view.agentId != null);
  checkPending();
}

function setComposer(sel, enabled) {
  const form = $(sel);
  form.setAttribute("aria-disabled", String(!enabled));
  for (const el of form.querySelectorAll("textarea, button")) el.disabled = !enabled;
}

function renderReplyKeyboard(messages) {
  // The latest bot message that sets or removes a reply keyboard decides what the customer sees.
  const box = $("#customer-keyboard");
  let markup = null;
  for (const m of messages) {
    if (!m.from_bot || !m.reply_markup) continue;
    if (m.reply_markup.keyboard) markup = m.reply_markup;
    else if (m.reply_markup.remove_keyboard) markup = null;
  }
  const sig = JSON.stringify(markup);
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  box.replaceChildren();
  box.hidden = !markup;
  if (!markup) return;
  for (const row of markup.keyboard) {
    const line = document.createElement("div");
    line.className = "row";
    for (const b of row) {
      const text = typeof b === "string" ? b : b.text;
      const el = document.createElement("button");
      el.type = "button";
      el.textContent = text;
      el.addEventListener("click", () => sendText("customer", text));
      line.append(el);
    }
    box.append(line);
  }
}

// ---- acting ---------------------------------------------------------------------------------------

function pressAs(who, chatId) {
  return async (m, button, el) => {
    const userId = who();
    if (userId == null) return fail(new Error(t("pick_presser")));
    el.classList.add("pending");
    try {
      const body = { user_id: userId, message_id: m.message_id, data: button.callback_data };
      if (chatId != null) body.chat_id = chatId;
      const r = await control("POST", "press", body);
      view.pending.set(r.callback_query_id, { el, until: Date.now() + 15000 });
      setTimeout(checkPending, 15500);
    } catch (err) {
      el.classList.remove("pending");
      fail(err);
    }
  };
}

async function checkPending() {
  if (!view.pending.size) return;
  let answers;
  try { answers = await control("GET", "callback_answers"); } catch { return; }
  const byId = new Map(answers.map((a) => [a.callback_query_id, a]));
  for (const [id, p] of view.pending) {
    const a = byId.get(id);
    if (a && a.answered) {
      view.pending.delete(id);
      p.el.classList.remove("pending");
      if (a.answer && a.answer.text) toast(a.answer.text, a.answer.show_alert ? "alert" : "");
      if (a.answer && a.answer.url) window.open(a.answer.url, "_blank", "noopener");
    } else if (Date.now() > p.until) {
      view.pending.delete(id);
      p.el.classList.remove("pending");
    }
  }
}

function where(side) {
  if (side === "customer") return { user_id: view.userId };
  const body = { user_id: view.agentId, chat_id: view.groupId };
  if (view.threadId !== GENERAL) body.message_thread_id = view.threadId;
  return body;
}

async function sendText(side, text) {
  if (!text.trim()) return false;
  try {
    await control("POST", "send_text", { ...where(side), text });
    (side === "customer" ? customerView : groupView).followMine = true;
    refresh();
    return true;
  } catch (err) {
    fail(err);
    return false;
  }
}

// The length the browser reads from the file, as a client fills in a video's duration (0: unknown).
function videoSeconds(file) {
  return new Promise((resolve) => {
    const v = document.createElement("video");
    const url = URL.createObjectURL(file);
    const done = (s) => { URL.revokeObjectURL(url); resolve(Number.isFinite(s) ? Math.round(s) : 0); };
    v.preload = "metadata";
    v.onloadedmetadata = () => done(v.duration);
    v.onerror = () => done(0);
    v.src = url;
  });
}

async function sendFile(side, file, caption) {
  const form = new FormData();
  for (const [k, v] of Object.entries(where(side))) form.append(k, String(v));
  if (caption) form.append("caption", caption);
  const isImage = /^image\/(jpeg|png|webp|gif|bmp)$/.test(file.type);
  const isVideo = /^video\/(mp4|quicktime)$/.test(file.type);  // as Telegram's apps send a video message
  if (!isImage) {
    form.append("filename", file.name);
    form.append("mime_type", file.type || "application/octet-stream");
  }
  if (isVideo) form.append("duration", String(await videoSeconds(file)));
  form.append("file", file, file.name || "photo.jpg");
  try {
    await control("POST", isImage ? "send_photo" : isVideo ? "send_video" : "send_document", form);
    (side === "customer" ? customerView : groupView).followMine = true;
    refresh();
    return true;
  } catch (err) {
    fail(err);
    return false;
  }
}

function wireComposer(side, formSel) {
  const form = $(formSel);
  const input = $("textarea", form);
  const file = $("input[type=file]", form);
  const grow = () => { input.style.height = "auto"; input.style.height = Math.min(input.scrollHeight + 2, 140) + "px"; };
  input.addEventListener("input", grow);
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { // IME composition (pinyin) keeps its Enter
      ev.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = input.value;
    if (await sendText(side, text)) {
      if (input.value === text) input.value = "";
      grow();
    }
    input.focus();
  });
  $(".attach", form).addEventListener("click", () => file.click());
  file.addEventListener("change", async () => {
    const f = file.files && file.files[0];
    file.value = "";
    if (!f) return;
    if (await sendFile(side, f, input.value.trim())) { input.value = ""; grow(); }
    input.focus();
  });
  input.addEventListener("paste", async (ev) => {
    const f = [...(ev.clipboardData ? ev.clipboardData.files : [])].find((x) => x.type.startsWith("image/"));
    if (!f) return;
    ev.preventDefault();
    if (await sendFile(side, f, input.value.trim())) { input.value = ""; grow(); }
  });
  const pane = form.closest(".pane");
  pane.addEventListener("dragover", (ev) => ev.preventDefault());
  pane.addEventListener("drop", async (ev) => {
    ev.preventDefault();
    const f = ev.dataTransfer && ev.dataTransfer.files[0];
    if (f) await sendFile(side, f, input.value.trim());
  });
}

function selectTopic(threadId) {
  view.threadId = threadId;
  remember("topic", threadId);
  refresh();
}

function wire() {
  wireComposer("customer", "#customer-composer");
  wireComposer("group", "#group-composer");
  $("#customer-start").addEventListener("click", () => sendText("customer", "/start"));
  $("#customer-select").addEventListener("change", (ev) => {
    view.userId = Number(ev.target.value);
    remember("user", view.userId);
    refresh();
  });
  $("#group-select").addEventListener("change", (ev) => {
    view.groupId = Number(ev.target.value);
    view.threadId = view.agentId = null;
    remember("group", view.groupId);
    refresh();
  });
  $("#agent-select").addEventListener("change", (ev) => {
    view.agentId = Number(ev.target.value);
    remember("agent", view.agentId);
    refresh();
  });
  for (const b of document.querySelectorAll("#lang-toggle button")) {
    b.addEventListener("click", async () => {
      setPageLang(pageLangOf(b.dataset.lang));
      if (view.userId == null) return;
      try {
        await control("POST", "language", { user_id: view.userId, language_code: b.dataset.lang });
        toast(t("lang.toast", { lang: b.textContent }));
        refresh();
      } catch (err) { fail(err); }
    });
  }
  const reset = $("#reset");
  let armed = null;
  reset.addEventListener("click", async () => {
    if (!armed) {
      reset.dataset.armed = "";
      reset.textContent = t("reset.armed");
      armed = setTimeout(() => { armed = null; delete reset.dataset.armed; reset.textContent = t("reset"); }, 4000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    delete reset.dataset.armed;
    reset.textContent = t("reset.busy");
    reset.disabled = true;
    try {
      const r = await control("POST", "demo_reset", {});
      view.seen.clear();
      toast(t(r.hook ? "reset.done" : "reset.cleared"));
      refresh();
    } catch (err) {
      fail(err);
    } finally {
      reset.disabled = false;
      reset.textContent = t("reset");
    }
  });
}

function showLive() {
  const live = $("#live");
  live.dataset.state = view.live;
  live.textContent = t("live." + view.live);
}

function listen() {
  const events = new EventSource("/control/events");
  events.addEventListener("open", () => { view.live = "live"; showLive(); refresh(); });
  events.addEventListener("changed", () => refresh());
  events.addEventListener("error", () => { view.live = "offline"; showLive(); });
}

applyPageTexts();
wire();
refresh();
listen();
