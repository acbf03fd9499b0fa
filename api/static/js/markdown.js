// A small, safe markdown renderer for model output.
//
// Safety comes from the order of work: the whole input is HTML-escaped first,
// and only then are a few constructs turned into tags this module writes itself
// (code fences, inline code, bold, italic, links with http(s) URLs only, lists,
// headings, quotes, paragraphs). No input character can open a tag or leave an
// attribute, so model output (or a prompt-injected payload) cannot run script.
// The page's Content-Security-Policy forbids inline script as a second fence.
// It renders partial input sensibly too: an unclosed fence while the answer is
// still streaming shows as a code block that grows.

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)[^`]*$/;
const BULLET = /^ {0,3}[-*+]\s+(.*)$/;
const ORDERED = /^ {0,3}(\d{1,9})[.)]\s+(.*)$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const QUOTE = /^ {0,3}&gt;\s?(.*)$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;

/** Inline markup on already-escaped text. */
function inline(escaped) {
  const stash = [];
  const keep = (html) => `\u0000${stash.push(html) - 1}\u0000`;
  let out = escaped.replace(/(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g, (_, __, code) =>
    keep(`<code>${code.trim() === "" ? code : code.replace(/^ (.*) $/, "$1")}</code>`),
  );
  // [text](http(s)://url): the URL is escaped text already, so it cannot leave the attribute.
  // URLs may hold `&amp;` but no other entity: an escaped quote or bracket ends the match.
  out = out.replace(/\[([^\]\n]+)\]\((https?:\/\/(?:[^\s)&\u0000]|&amp;)+)\)/g, (_, label, url) =>
    keep(`<a href="${url}" target="_blank" rel="noopener noreferrer nofollow">${label}</a>`),
  );
  // Bare URLs; `&amp;` is the only entity a URL can hold here, and trailing punctuation stays text.
  out = out.replace(/(^|[\s(])(https?:\/\/(?:[^\s<)&\u0000]|&amp;)+)/g, (_, lead, found) => {
    const url = found.replace(/[.,;:!?]+$/, "");
    const rest = found.slice(url.length);
    return lead + keep(`<a href="${url}" target="_blank" rel="noopener noreferrer nofollow">${url}</a>`) + rest;
  });
  out = out
    .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, "<strong>$1</strong>")
    .replace(/__(?=\S)([\s\S]*?\S)__(?!\w)/g, "<strong>$1</strong>")
    .replace(/(^|[^*\w])\*(?=\S)([^*]*?\S)\*(?!\*)/g, "$1<em>$2</em>")
    .replace(/(^|[^_\w])_(?=\S)([^_]*?\S)_(?!\w)/g, "$1<em>$2</em>")
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, "<del>$1</del>");
  return out.replace(/\u0000(\d+)\u0000/g, (_, i) => stash[Number(i)]);
}

function renderList(items, ordered, start) {
  const tag = ordered ? "ol" : "ul";
  const startAttr = ordered && start !== 1 ? ` start="${start}"` : "";
  const body = items.map((item) => `<li>${inline(item.join("\n")).replace(/\n/g, "<br>")}</li>`);
  return `<${tag}${startAttr}>${body.join("")}</${tag}>`;
}

/** Markdown to HTML. Every character of the input reaches the output escaped. */
export function renderMarkdown(source) {
  const lines = escapeHtml(String(source).replace(/\u0000/g, "\uFFFD").replace(/\r\n?/g, "\n")).split("\n");
  const html = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(FENCE);
    if (fence) {
      const marker = fence[1];
      const lang = fence[2];
      const body = [];
      i += 1;
      while (i < lines.length && !(lines[i].trim().startsWith(marker[0].repeat(marker.length)) && lines[i].trim().replace(/[`~]/g, "") === "")) {
        body.push(lines[i]);
        i += 1;
      }
      i += 1; // the closing fence (or the end of a still-streaming answer)
      const label = lang ? `<span class="code-lang">${lang}</span>` : "";
      const cls = lang ? ` class="language-${lang}"` : "";
      html.push(
        `<div class="code-block"><div class="code-bar">${label}<button type="button" class="copy-code" aria-label="Copy code">Copy</button></div><pre><code${cls}>${body.join("\n")}</code></pre></div>`,
      );
      continue;
    }
    if (line.trim() === "") {
      i += 1;
      continue;
    }
    const heading = line.match(HEADING);
    if (heading) {
      const level = heading[1].length;
      html.push(`<h${level}>${inline(heading[2])}</h${level}>`);
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      html.push("<hr>");
      i += 1;
      continue;
    }
    if (QUOTE.test(line)) {
      const quoted = [];
      while (i < lines.length && QUOTE.test(lines[i])) {
        quoted.push(lines[i].match(QUOTE)[1]);
        i += 1;
      }
      html.push(`<blockquote>${renderMarkdown(unescapeForNesting(quoted.join("\n")))}</blockquote>`);
      continue;
    }
    const bullet = line.match(BULLET);
    const ordered = line.match(ORDERED);
    if (bullet || ordered) {
      const isOrdered = !bullet;
      const pattern = isOrdered ? ORDERED : BULLET;
      const start = isOrdered ? Number(ordered[1]) : 1;
      const items = [];
      while (i < lines.length) {
        const m = lines[i].match(pattern);
        if (m) {
          items.push([isOrdered ? m[2] : m[1]]);
        } else if (lines[i].trim() !== "" && /^\s+\S/.test(lines[i]) && items.length) {
          items[items.length - 1].push(lines[i].trim()); // continuation line
        } else {
          break;
        }
        i += 1;
      }
      html.push(renderList(items, isOrdered, start));
      continue;
    }
    const para = [];
    while (
      i < lines.length &&
      lines[i].trim() !== "" &&
      !FENCE.test(lines[i]) &&
      !HEADING.test(lines[i]) &&
      !BULLET.test(lines[i]) &&
      !ORDERED.test(lines[i]) &&
      !QUOTE.test(lines[i])
    ) {
      para.push(lines[i]);
      i += 1;
    }
    html.push(`<p>${inline(para.join("\n")).replace(/\n/g, "<br>")}</p>`);
  }
  return html.join("");
}

// A quote's lines are re-rendered as markdown; undo the escaping first so the
// inner call escapes exactly once.
function unescapeForNesting(escaped) {
  return escaped
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, "&");
}
