#include "analyzer/report/html.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "analyzer/report/frame_names.h"
#include "common/hex.h"
#include "common/units.h"

namespace heaptrail::analyzer::report {
namespace {

using Json = nlohmann::json;

// Length of the valid UTF-8 sequence at s[i], 0 if invalid.
size_t utf8Length(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n = 0;
  uint32_t min = 0;
  if (c < 0x80) return 1;
  if ((c & 0xe0) == 0xc0) n = 2, min = 0x80;
  else if ((c & 0xf0) == 0xe0) n = 3, min = 0x800;
  else if ((c & 0xf8) == 0xf0) n = 4, min = 0x10000;
  else return 0;
  if (i + n > s.size()) return 0;
  uint32_t cp = c & (0x7f >> n);
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xc0) != 0x80) return 0;
    cp = cp << 6 | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

// One flame graph node: values are [inuse bytes, inuse count, alloc bytes, alloc count].
struct FlameNode {
  std::string name;
  std::array<uint64_t, 4> values{};
  std::map<std::string, size_t> children;
  size_t parent = SIZE_MAX;
  bool kept = true;
};

class FlameTree {
 public:
  FlameTree() { nodes_.push_back({"all", {}, {}, SIZE_MAX, true}); }

  void add(const std::vector<std::string>& path, const std::array<uint64_t, 4>& v) {
    size_t at = 0;
    addValues(at, v);
    for (const auto& name : path) {
      auto it = nodes_[at].children.find(name);
      if (it == nodes_[at].children.end()) {
        nodes_.push_back({name, {}, {}, at, true});
        it = nodes_[at].children.emplace(name, nodes_.size() - 1).first;
      }
      at = it->second;
      addValues(at, v);
    }
  }

  // Keeps the `limit` nodes with the largest share of either total; a child never has a
  // larger share than its parent, so what is kept stays one tree. Returns the nodes dropped.
  size_t prune(size_t limit) {
    if (nodes_.size() <= limit) return 0;
    const auto& total = nodes_[0].values;
    std::vector<std::pair<double, size_t>> weights;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const auto& v = nodes_[i].values;
      const double a = total[0] ? static_cast<double>(v[0]) / static_cast<double>(total[0]) : 0;
      const double b = total[2] ? static_cast<double>(v[2]) / static_cast<double>(total[2]) : 0;
      weights.emplace_back(i == 0 ? 2.0 : std::max(a, b), i);
    }
    std::sort(weights.begin(), weights.end(), [](const auto& x, const auto& y) {
      return x.first != y.first ? x.first > y.first : x.second < y.second;
    });
    for (auto& n : nodes_) n.kept = false;
    // Parents come before their children (smaller index) when weights tie.
    for (size_t k = 0; k < limit; ++k) nodes_[weights[k].second].kept = true;
    size_t dropped = 0;
    for (size_t i = 1; i < nodes_.size(); ++i) {
      if (nodes_[i].kept && !nodes_[nodes_[i].parent].kept) nodes_[i].kept = false;
      dropped += !nodes_[i].kept;
    }
    return dropped;
  }

  Json toJson(std::vector<std::string>& names, std::map<std::string, size_t>& nameIndex) const {
    return nodeJson(0, names, nameIndex);
  }

 private:
  void addValues(size_t at, const std::array<uint64_t, 4>& v) {
    for (size_t i = 0; i < 4; ++i) nodes_[at].values[i] += v[i];
  }

  Json nodeJson(size_t at, std::vector<std::string>& names, std::map<std::string, size_t>& nameIndex) const {
    const FlameNode& n = nodes_[at];
    auto [it, inserted] = nameIndex.try_emplace(n.name, names.size());
    if (inserted) names.push_back(n.name);
    Json kids = Json::array();
    std::vector<size_t> order;
    for (const auto& [name, child] : n.children)
      if (nodes_[child].kept) order.push_back(child);
    for (const size_t child : order) kids.push_back(nodeJson(child, names, nameIndex));
    return Json::array({it->second, n.values[0], n.values[1], n.values[2], n.values[3], std::move(kids)});
  }

  std::vector<FlameNode> nodes_;
};

// JSON that can sit inside a <script> element: nothing in it can close the element or
// start markup, whatever the trace's strings hold.
std::string scriptSafeJson(const Json& j) {
  const std::string raw = j.dump(-1, ' ', true, Json::error_handler_t::replace);
  std::string out;
  out.reserve(raw.size());
  for (const char c : raw) {
    if (c == '<') out += "\\u003c";
    else if (c == '>') out += "\\u003e";
    else if (c == '&') out += "\\u0026";
    else out += c;
  }
  return out;
}

std::string frameText(const FunctionAt& f) {
  std::string text = f.name;
  if (!f.file.empty()) {
    text += "  " + std::filesystem::path(f.file).lexically_normal().string();
    if (f.line > 0) text += ":" + std::to_string(f.line);
  }
  if (f.inlined) text += "  (inlined)";
  return text;
}

const char* const kStyle = R"CSS(
body{font:14px/1.4 system-ui,sans-serif;margin:0 24px 40px;color:#222;background:#fff}
h1{font-size:20px;margin:16px 0 4px}h2{font-size:16px;margin:24px 0 8px}
.warn{background:#fde2e1;border:2px solid #c62828;color:#7f1010;padding:8px 12px;margin:8px 0;font-weight:600}
.note{background:#fff4d6;border:1px solid #d9a400;padding:6px 12px;margin:8px 0}
table.summary td{padding:1px 12px 1px 0}table.summary td:first-child{color:#555}
#flame{position:relative;border:1px solid #ccc;overflow:hidden;font:12px monospace;user-select:none}
.fg-node{position:absolute;height:17px;box-sizing:border-box;border:1px solid #fff;overflow:hidden;white-space:nowrap;
 padding:0 3px;cursor:pointer;border-radius:2px}
.fg-node:hover{filter:brightness(0.85)}.fg-ancestor{opacity:.55}
.controls{margin:6px 0}.controls button,.controls select{margin-right:8px}
#flame-info{font:12px monospace;min-height:18px;color:#333}
.chart{margin:6px 0 18px}.chart text{font:11px sans-serif;fill:#444}
table.leaks{border-collapse:collapse;width:100%}table.leaks th,table.leaks td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
table.leaks td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
ol.stack{margin:4px 0;padding-left:28px;font:12px monospace}ol.stack li.inl{color:#666}
summary{cursor:pointer;font-family:monospace}
)CSS";

// Draws the flame graph and the memory charts from the data element; every name goes
// into the page with textContent only.
const char* const kScript = R"JS(
'use strict';
window.addEventListener('error', e => {
  document.documentElement.dataset.scriptErrors = (document.documentElement.dataset.scriptErrors || '') + e.message + ';';
});
const data = JSON.parse(document.getElementById('report-data').textContent);
const names = data.flame.names;
const METRICS = [['inuse bytes', 'bytes', 1], ['inuse allocations', 'allocations', 2], ['allocated bytes', 'bytes', 3], ['allocations', 'allocations', 4]];
let metric = 0, focus = null;
const flame = document.getElementById('flame');
const info = document.getElementById('flame-info');
function val(n) { return n[METRICS[metric][2]]; }
function color(name) {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  return 'hsl(' + (10 + h % 45) + ',' + (70 + h % 20) + '%,' + (58 + h % 12) + '%)';
}
function label(n) {
  const v = val(n), total = val(data.flame.tree);
  const pct = total ? (100 * v / total).toFixed(1) : '0.0';
  return names[n[0]] + ': ' + v + ' ' + METRICS[metric][1] + ' (' + pct + '%)';
}
function pathTo(target) {
  const path = [];
  (function walk(n) {
    path.push(n);
    if (n === target) return true;
    for (const c of n[5]) if (walk(c)) return true;
    path.pop();
    return false;
  })(data.flame.tree);
  return path;
}
function drawFlame() {
  while (flame.firstChild) flame.removeChild(flame.firstChild);
  const width = flame.clientWidth || 1000, rowH = 18;
  const root = focus || data.flame.tree;
  const ancestors = focus ? pathTo(focus).slice(0, -1) : [];
  let maxDepth = 0, drawn = 0;
  function box(n, x, w, depth, cls) {
    const d = document.createElement('div');
    d.className = 'fg-node' + (cls ? ' ' + cls : '');
    d.style.left = x + 'px';
    d.style.width = Math.max(w, 1) + 'px';
    d.style.top = depth * rowH + 'px';
    d.style.background = color(names[n[0]]);
    d.textContent = w > 30 ? names[n[0]] : '';
    d.title = label(n);
    d.dataset.name = names[n[0]];
    d.dataset.value = val(n);
    d.addEventListener('click', ev => { ev.stopPropagation(); focus = n === data.flame.tree ? null : n; drawFlame(); });
    d.addEventListener('mouseenter', () => { info.textContent = label(n); });
    flame.appendChild(d);
    drawn++;
    maxDepth = Math.max(maxDepth, depth);
  }
  ancestors.forEach((a, i) => box(a, 0, width, i, 'fg-ancestor'));
  const base = ancestors.length;
  const total = val(root);
  (function layout(n, x, w, depth) {
    box(n, x, w, depth, '');
    if (!total) return;
    let cx = x;
    const kids = n[5].slice().sort((a, b) => val(b) - val(a));
    for (const c of kids) {
      const cw = w * val(c) / val(n);
      if (cw >= 0.5 && val(c) > 0) layout(c, cx, cw, depth + 1);
      cx += cw;
    }
  })(root, 0, width, base);
  flame.style.height = ((maxDepth + 1) * rowH + 2) + 'px';
  flame.dataset.drawn = drawn;
  info.textContent = label(root);
}
document.getElementById('flame-metric').addEventListener('change', e => { metric = +e.target.value; drawFlame(); });
document.getElementById('flame-reset').addEventListener('click', () => { focus = null; drawFlame(); });
window.addEventListener('resize', drawFlame);

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, parent) {
  const e = document.createElementNS(SVG, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function human(bytes) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (bytes >= 1024 && i < u.length - 1) { bytes /= 1024; i++; }
  return (i ? bytes.toFixed(1) : String(Math.round(bytes))) + ' ' + u[i];
}
function seconds(ns) { return (ns / 1e9).toFixed(ns < 1e10 ? 3 : 1) + ' s'; }
function drawTimelines() {
  const host = document.getElementById('timelines');
  for (const t of data.timelines) {
    const W = 900, H = 180, L = 70, R = 70, T = 10, B = 28;
    const n = t.end_bytes.length;
    const span = Math.max(n * t.window_ns, data.analysis_ns, 1);
    const maxBytes = Math.max(1, ...t.peak_bytes);
    const rates = t.allocated_bytes.map(b => b / (t.window_ns / 1e9));
    const maxRate = Math.max(1, ...rates);
    const title = document.createElement('div');
    title.textContent = 'pid ' + t.pid + (t.comm ? ' ' + t.comm : '') + ': outstanding (peak ' + human(maxBytes) +
        ') and allocation rate (peak ' + human(maxRate) + '/s)';
    host.appendChild(title);
    const s = svg('svg', {width: W, height: H, class: 'chart', 'data-pid': t.pid}, host);
    const x = ns => L + (W - L - R) * ns / span;
    const yb = b => T + (H - T - B) * (1 - b / maxBytes);
    const yr = r => T + (H - T - B) * (1 - r / maxRate);
    svg('line', {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#999'}, s);
    svg('line', {x1: L, y1: T, x2: L, y2: H - B, stroke: '#999'}, s);
    const pts = [], peak = [], rate = [];
    for (let i = 0; i < n; i++) {
      pts.push(x((i + 1) * t.window_ns) + ',' + yb(t.end_bytes[i]));
      peak.push(x((i + 1) * t.window_ns) + ',' + yb(t.peak_bytes[i]));
      rate.push(x((i + 0.5) * t.window_ns) + ',' + yr(rates[i]));
    }
    pts.unshift(x(0) + ',' + yb(0));
    svg('polyline', {points: rate.join(' '), fill: 'none', stroke: '#7aa6d6', 'stroke-width': 1, 'stroke-dasharray': '3 2', 'stroke-opacity': 0.6, class: 'rate'}, s);
    svg('polyline', {points: peak.join(' '), fill: 'none', stroke: '#f0b08a', 'stroke-width': 1, class: 'peak'}, s);
    svg('polyline', {points: pts.join(' '), fill: 'none', stroke: '#c0392b', 'stroke-width': 2, class: 'outstanding'}, s);
    const mark = (ns, text, color, cls) => {
      svg('line', {x1: x(ns), y1: T, x2: x(ns), y2: H - B, stroke: color, 'stroke-dasharray': '4 3', class: cls}, s);
      svg('text', {x: x(ns) - 3, y: H - B - 4, fill: color, 'text-anchor': 'end'}, s).textContent = text;
    };
    if (data.since_ns > 0 && data.analysis_ns >= data.since_ns)
      mark(data.analysis_ns - data.since_ns, '--since threshold', '#8e44ad', 'since');
    mark(data.analysis_ns, 'analysis point', '#2c3e50', 'analysis');
    svg('text', {x: 4, y: T + 10}, s).textContent = human(maxBytes);
    svg('text', {x: 4, y: H - B}, s).textContent = '0';
    svg('text', {x: W - R + 4, y: T + 10, fill: '#4a7fb5'}, s).textContent = human(maxRate) + '/s';
    svg('text', {x: L, y: H - 8}, s).textContent = '0 s';
    svg('text', {x: W - R - 40, y: H - 8}, s).textContent = seconds(span);
  }
}
drawFlame();
drawTimelines();
document.documentElement.dataset.rendered = 'yes';
)JS";

}  // namespace

std::string htmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t n = utf8Length(text, i);
    if (n == 0) {
      out += "\xef\xbf\xbd";
      ++i;
      continue;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (n == 1) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        default:
          if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
            out += "\xef\xbf\xbd";
          else
            out += static_cast<char>(c);
      }
    } else {
      out.append(text.substr(i, n));
    }
    i += n;
  }
  return out;
}

void writeHtml(std::ostream& out, const LeakReport& report, const HtmlLimits& limits) {
  const ReportSummary& s = report.summary;
  const bool perProcess = s.processes.size() > 1 && !s.pid;

  FlameTree tree;
  for (const auto& g : report.leaks) {
    std::vector<std::string> path;
    if (perProcess) path.push_back("pid " + std::to_string(g.pid) + (g.comm.empty() ? "" : " " + g.comm));
    for (const auto& f : rootFirst(g.stack)) path.push_back(f.name);
    tree.add(path, {g.bytes, g.count, g.allocatedBytes, g.allocations});
  }
  const size_t dropped = tree.prune(limits.flameNodes);
  std::vector<std::string> names;
  std::map<std::string, size_t> nameIndex;
  Json data = Json::object();
  Json flameTree = tree.toJson(names, nameIndex);
  data["flame"] = Json{{"names", names}, {"tree", std::move(flameTree)}};
  data["analysis_ns"] = s.analysisNs;
  data["since_ns"] = s.sinceNs;
  Json timelines = Json::array();
  for (const auto& t : report.timelines) {
    Json end = Json::array(), peak = Json::array(), allocated = Json::array();
    for (const auto& w : t.windows) {
      end.push_back(w.endBytes);
      peak.push_back(w.peakBytes);
      allocated.push_back(w.allocatedBytes);
    }
    std::string comm;
    for (const auto& g : report.leaks)
      if (g.pid == t.pid && !g.comm.empty()) comm = g.comm;
    timelines.push_back(Json{{"pid", t.pid}, {"comm", comm}, {"window_ns", t.windowNs}, {"end_bytes", end},
                             {"peak_bytes", peak}, {"allocated_bytes", allocated}});
  }
  data["timelines"] = std::move(timelines);

  const auto e = [](std::string_view t) { return htmlEscape(t); };
  out << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
      << "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'; "
         "style-src 'unsafe-inline'; img-src data:\">\n"
      << "<meta name=\"viewport\" content=\"width=device-width\">\n"
      << "<title>heaptrail: " << e(std::filesystem::path(s.trace).filename().string()) << "</title>\n"
      << "<style>" << kStyle << "</style></head>\n<body>\n";
  out << "<h1>heaptrail report: " << e(s.trace) << "</h1>\n";
  if (s.targetPid != 0) {
    out << "<div>pid " << s.targetPid;
    if (!s.targetCommand.empty()) {
      out << ":";
      for (const auto& a : s.targetCommand) out << " " << e(a);
    }
    out << "</div>\n";
  }
  for (const auto& w : report.warnings) out << "<div class=\"warn\">WARNING: " << e(w) << "</div>\n";

  out << "<h2>Summary</h2>\n<table class=\"summary\" id=\"summary\">\n";
  const auto row = [&](const std::string& key, const std::string& value, const char* id = nullptr) {
    out << "<tr><td>" << e(key) << "</td><td" << (id ? std::string(" id=\"") + id + "\"" : "") << ">" << e(value) << "</td></tr>\n";
  };
  row("analysis point", s.atNs ? common::formatDuration(*s.atNs) + " after the start (--at)"
                               : "end of the recording, " + common::formatDuration(s.analysisNs) + " after the start");
  row("events", std::to_string(s.events));
  row("allocations", std::to_string(s.allocations) + " (" + std::to_string(s.bytesAllocated) + " bytes, " +
                         common::formatBytes(s.bytesAllocated) + ")");
  row("frees", std::to_string(s.frees));
  row("peak outstanding", std::to_string(s.peakBytes) + " bytes (" + common::formatBytes(s.peakBytes) + ") at " +
                              common::formatDuration(s.peakNs));
  row("outstanding", std::to_string(s.outstandingBytes) + " bytes (" + common::formatBytes(s.outstandingBytes) + ") in " +
                         std::to_string(s.outstandingAllocations) + " allocations", "total-outstanding");
  if (s.sinceNs > 0)
    row("outstanding for at least " + common::formatDuration(s.sinceNs), std::to_string(s.matchingBytes) + " bytes in " +
                                                                           std::to_string(s.matchingAllocations) + " allocations");
  row("stacks", std::to_string(s.stackGroups));
  row("double frees", std::to_string(s.doubleFrees));
  row("mismatched frees", std::to_string(s.mismatches));
  row("frees of unknown addresses", std::to_string(s.unknownFrees));
  row("lost events", s.lostTotal == 0 ? std::string("none") : std::to_string(s.lostTotal), "lost-events");
  row("trace", s.status + (s.problem.empty() ? "" : ": " + s.problem));
  if (s.suppressing) {
    std::string used;
    for (const auto& u : s.suppressionsUsed) used += (used.empty() ? " (" : ", ") + u.pattern + " " + std::to_string(u.groups);
    if (!used.empty()) used += ")";
    row("suppressed", std::to_string(s.suppressedBytes) + " bytes in " + std::to_string(s.suppressedGroups) + " stacks" + used,
        "suppressed");
  }
  out << "</table>\n";

  out << "<h2>Flame graph</h2>\n<div class=\"controls\"><select id=\"flame-metric\">"
      << "<option value=\"0\">outstanding bytes</option><option value=\"1\">outstanding allocations</option>"
      << "<option value=\"2\">allocated bytes</option><option value=\"3\">allocations</option></select>"
      << "<button id=\"flame-reset\">reset zoom</button> click a frame to zoom in</div>\n";
  if (dropped > 0)
    out << "<div class=\"note\" id=\"flame-capped\">" << dropped << " of the smallest frames are not drawn (at most "
        << limits.flameNodes << "): their values are in their callers'.</div>\n";
  out << "<div id=\"flame-info\"></div><div id=\"flame\"></div>\n";

  out << "<h2>Memory over time</h2>\n<div class=\"note\">Solid: outstanding bytes at the end of each window; light: the peak "
         "within it; dashed: allocation rate (bytes allocated per second).</div>\n<div id=\"timelines\"></div>\n";

  out << "<h2>Stacks</h2>\n<div>" << s.stackGroups << " stacks";
  if (s.rankedBy == "growth") out << " ranked by steadiness of growth";
  else if (s.rankedBy == "allocated") out << " ranked by allocated bytes";
  else out << " ranked by outstanding bytes";
  size_t listed = 0;
  for (const auto& g : report.leaks) listed += g.bytes > 0 || s.rankedBy != "bytes";
  listed = std::min(listed, limits.tableRows);
  if (listed < report.leaks.size()) out << "; the first " << listed << " are listed";
  out << ".</div>\n<table class=\"leaks\" id=\"leaks\"><thead><tr><th>#</th><th>outstanding bytes</th><th>allocations</th>"
      << "<th>allocated bytes (all)</th><th>pid</th><th>oldest</th><th>growth</th><th>stack (allocator's caller first)</th></tr></thead><tbody>\n";
  for (size_t i = 0; i < listed; ++i) {
    const LeakGroup& g = report.leaks[i];
    const auto functions = rootFirst(g.stack);
    char rate[64];
    std::snprintf(rate, sizeof rate, "%+.0f B/s, %u/%u windows", g.growth.bytesPerSecond, g.growth.grownWindows, g.growth.windows);
    out << "<tr class=\"leak\"><td class=\"num\">" << i + 1 << "</td><td class=\"num bytes\">" << g.bytes << "</td><td class=\"num\">"
        << g.count << "</td><td class=\"num\">" << g.allocatedBytes << "</td><td class=\"num\">" << g.pid
        << (g.comm.empty() ? "" : " " + e(g.comm)) << "</td><td class=\"num\">"
        << (g.count ? e(common::formatDuration(g.oldestAgeNs)) : "") << "</td><td class=\"num\">" << rate << "</td><td><details"
        << (i < 10 ? " open" : "") << "><summary class=\"leaf\">" << e(functions.back().name) << "</summary><ol class=\"stack\" start=\"0\">";
    for (auto it = functions.rbegin(); it != functions.rend(); ++it)
      out << "<li" << (it->inlined ? " class=\"inl\"" : "") << ">" << e(frameText(*it)) << "</li>";
    out << "</ol></details></td></tr>\n";
  }
  out << "</tbody></table>\n";

  out << "<script type=\"application/json\" id=\"report-data\">" << scriptSafeJson(data) << "</script>\n"
      << "<script>" << kScript << "</script>\n</body></html>\n";
}

}  // namespace heaptrail::analyzer::report
