//! Server-rendered HTML of the status page (the snapshot that works without
//! JavaScript). Every text that comes from a spec, a probe or a backend goes
//! through `esc`; numbers and our own enum names are the only other inputs.

use std::fmt::Write;

use super::model::{BackendView, GroupView, TimelineView, Update};

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Which part of the state a page shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    pub group: Option<String>,
    pub backend: Option<String>,
    /// The filter box's text (`?q=`): matched against names, statuses, reasons and messages.
    pub filter: String,
}

impl Scope {
    fn path(&self) -> String {
        match (&self.group, &self.backend) {
            (Some(g), Some(b)) => format!("/g/{}/b/{}", esc(g), esc(b)),
            (Some(g), None) => format!("/g/{}", esc(g)),
            _ => "/".to_owned(),
        }
    }
}

/// The icon shown beside a status or phase, so it is never colour alone.
pub fn icon(name: &str) -> &'static str {
    match name {
        "HEALTHY" | "READY" => "✔",
        "DEGRADED" => "▲",
        "UNHEALTHY" | "FAILED" => "✖",
        "UNAUTHENTICATED" => "⚠",
        _ => "…",
    }
}

fn badge(kind: &str, name: &str) -> String {
    format!(
        "<span class=\"badge {kind}-{}\"><span aria-hidden=\"true\">{}</span> {}</span>",
        name.to_ascii_lowercase(),
        icon(name),
        esc(name)
    )
}

/// ISO 8601 (UTC) of unix milliseconds, for `<time datetime>`.
pub fn iso(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// "12 s ago", "5 min ago", "3 h ago", "2 d ago".
pub fn ago(now_ms: u64, at_ms: u64) -> String {
    let s = now_ms.saturating_sub(at_ms) / 1000;
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

fn time(now_ms: u64, at_ms: u64) -> String {
    format!("<time datetime=\"{}\" data-ms=\"{at_ms}\">{}</time>", iso(at_ms), ago(now_ms, at_ms))
}

/// A small inline SVG line of per-minute mean latencies (numbers only).
pub fn sparkline(points: &[f64]) -> String {
    const W: f64 = 60.0;
    const H: f64 = 16.0;
    let max = points.iter().copied().fold(0.0_f64, f64::max);
    if points.is_empty() {
        return String::new();
    }
    let y = |v: f64| if max > 0.0 { H - 1.0 - v / max * (H - 2.0) } else { H - 1.0 };
    let label = format!("latency per minute over the last hour, max {max:.1} ms");
    let shape = if points.len() == 1 {
        // One minute so far: a dot at "now" on a faint axis of the hour.
        format!(
            "<line x1=\"0\" y1=\"{b}\" x2=\"{W}\" y2=\"{b}\" stroke=\"currentColor\" stroke-opacity=\"0.3\"/>\
             <circle cx=\"{W}\" cy=\"{:.1}\" r=\"2\" fill=\"currentColor\"/>",
            y(points[0]),
            b = H - 1.0
        )
    } else {
        let step = W / (points.len() - 1) as f64;
        let pts: Vec<String> = points.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, y(*v))).collect();
        format!(
            "<polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\" points=\"{}\"/>",
            pts.join(" ")
        )
    };
    format!("<svg class=\"spark\" viewBox=\"-2 0 64 16\" width=\"64\" height=\"16\" role=\"img\" aria-label=\"{label}\">{shape}</svg>")
}

/// The text the filter box matches for a backend row.
pub fn backend_haystack(g: &GroupView, b: &BackendView) -> String {
    format!("{} {} {} {} {} {} {}", g.name, b.name, b.status, b.reason, b.message, b.server, b.protocol).to_lowercase()
}

fn group_haystack(g: &GroupView) -> String {
    format!("{} {} {}", g.name, g.phase, g.message).to_lowercase()
}

fn timeline_haystack(t: &TimelineView) -> String {
    format!("{}/{} {} {} {} {}", t.group, t.backend, t.from, t.to, t.reason, t.message).to_lowercase()
}

fn matches(filter: &str, haystack: &str) -> bool {
    filter.split_whitespace().all(|w| haystack.contains(&w.to_lowercase()))
}

fn backend_row(out: &mut String, g: &GroupView, b: &BackendView, now_ms: u64) {
    let key = format!("{}/{}", g.name, b.name);
    let latency = b.latency_ms.map_or_else(|| "–".to_owned(), super::model::ms_text);
    let last = b.last_transition_ms.map_or_else(|| "–".to_owned(), |t| time(now_ms, t));
    let _ = write!(
        out,
        "<tr id=\"b-{k}\" class=\"backend st-{st}\" data-backend=\"{k}\" data-status=\"{s}\">\
         <th scope=\"row\"><a href=\"/g/{g}/b/{b}\">{b}</a><div class=\"origin\">{origin}</div></th>\
         <td>{badge}<div class=\"routable\">{routable}</div></td>\
         <td><code>{reason}</code><div class=\"msg\">{msg}</div></td>\
         <td>{proto}</td>\
         <td class=\"latency\">{latency} {spark}</td>\
         <td>{last}</td>\
         <td class=\"server\">{server}</td></tr>",
        k = esc(&key),
        st = esc(&b.status.to_ascii_lowercase()),
        s = esc(b.status),
        g = esc(&g.name),
        b = esc(&b.name),
        origin = esc(&b.origin),
        badge = badge("st", b.status),
        routable = if b.routable { "routable" } else { "not routable" },
        reason = esc(b.reason),
        msg = esc(&b.message),
        proto = if b.protocol.is_empty() { "–".to_owned() } else { esc(&b.protocol) },
        spark = sparkline(&b.spark),
        server = esc(&b.server),
    );
}

fn group_article(out: &mut String, g: &GroupView, scope: &Scope, now_ms: u64) {
    let backends: Vec<&BackendView> = g
        .backends
        .iter()
        .filter(|b| scope.backend.as_ref().is_none_or(|want| *want == b.name))
        .filter(|b| matches(&scope.filter, &backend_haystack(g, b)))
        .collect();
    // A group shows when a backend matches, or its own name, phase or message does.
    if backends.is_empty() && !matches(&scope.filter, &group_haystack(g)) {
        return;
    }
    let _ = write!(
        out,
        "<article class=\"group ph-{ph}\" id=\"g-{n}\" data-group=\"{n}\" data-phase=\"{p}\">\
         <h3><a href=\"/g/{n}\">{n}</a> {badge}</h3>\
         <p class=\"meta\">{r} of {t} routable{src}</p><p class=\"msg\">{msg}</p>",
        ph = esc(&g.phase.to_ascii_lowercase()),
        n = esc(&g.name),
        p = esc(g.phase),
        badge = badge("ph", g.phase),
        r = g.routable,
        t = g.total,
        src = if g.source.is_empty() {
            String::new()
        } else {
            format!(" · from the {}", esc(g.source))
        },
        msg = esc(&g.message),
    );
    if !backends.is_empty() {
        out.push_str(
            "<table class=\"backends\"><thead><tr><th scope=\"col\">Backend</th><th scope=\"col\">Status</th>\
             <th scope=\"col\">Reason</th><th scope=\"col\">Protocol</th><th scope=\"col\">Latency</th>\
             <th scope=\"col\">Last transition</th><th scope=\"col\">Server</th></tr></thead><tbody>",
        );
        for b in backends {
            backend_row(out, g, b, now_ms);
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</article>");
}

fn timeline_item(out: &mut String, t: &TimelineView, now_ms: u64) {
    let latency = t.latency_ms.map_or_else(String::new, |l| format!(" ({})", super::model::ms_text(l)));
    let _ = write!(
        out,
        "<li data-group=\"{g}\" data-backend=\"{g}/{b}\" data-seq=\"{seq}\">{time} \
         <a href=\"/g/{g}/b/{b}\">{g}/{b}</a> {from} → {to} <code>{reason}</code> <span class=\"msg\">{msg}{latency}</span></li>",
        g = esc(&t.group),
        b = esc(&t.backend),
        seq = t.seq,
        time = time(now_ms, t.at_ms),
        from = badge("st", t.from),
        to = badge("st", t.to),
        reason = esc(t.reason),
        msg = esc(&t.message),
    );
}

/// The whole page for `scope`, from a snapshot `Update`.
pub fn render(u: &Update, scope: &Scope) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let title = match (&scope.group, &scope.backend) {
        (Some(g), Some(b)) => format!("{g}/{b} · mcp-health"),
        (Some(g), None) => format!("{g} · mcp-health"),
        _ => "mcp-health status".to_owned(),
    };
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{title}</title><link rel=\"stylesheet\" href=\"/assets/style.css\">\
         <script src=\"/assets/app.js\" defer></script></head>\
         <body data-group=\"{sg}\" data-backend=\"{sb}\" data-since=\"{since}\" data-revision=\"{rev}\">\
         <header><h1><a href=\"/\">mcp-health</a>{crumbs}</h1>\
         <p class=\"since\">History since {since_time}, when this daemon started: it is kept in memory, so a restart starts a fresh history.</p>\
         <form class=\"filter\" method=\"get\" action=\"{path}\" role=\"search\">\
         <label for=\"q\">Filter</label> <input id=\"q\" name=\"q\" type=\"search\" value=\"{q}\" \
         placeholder=\"group, backend, status, reason\" autocomplete=\"off\"> <button type=\"submit\">Apply</button></form>\
         <p id=\"live\" class=\"live\" role=\"status\" aria-live=\"polite\">Snapshot at {now}; reload for newer.</p></header>\
         <main><section aria-labelledby=\"groups-h\"><h2 id=\"groups-h\">Groups</h2><div id=\"groups\">",
        title = esc(&title),
        sg = esc(scope.group.as_deref().unwrap_or("")),
        sb = esc(scope.backend.as_deref().unwrap_or("")),
        since = u.since_ms,
        rev = u.revision,
        crumbs = match (&scope.group, &scope.backend) {
            (Some(g), Some(b)) => format!(" / <a href=\"/g/{g}\">{g}</a> / {b}", g = esc(g), b = esc(b)),
            (Some(g), None) => format!(" / {}", esc(g)),
            _ => String::new(),
        },
        since_time = time(u.now_ms, u.since_ms),
        path = scope.path(),
        q = esc(&scope.filter),
        now = iso(u.now_ms),
    );
    let before = out.len();
    for g in &u.groups {
        group_article(&mut out, g, scope, u.now_ms);
    }
    if out.len() == before {
        out.push_str("<p class=\"empty\">Nothing to show.</p>");
    }
    let _ = write!(
        out,
        "</div></section><section aria-labelledby=\"tl-h\"><h2 id=\"tl-h\">{}</h2><ol id=\"timeline\" reversed>",
        if scope.backend.is_some() {
            "Transitions of this backend"
        } else {
            "Recent transitions"
        }
    );
    let shown = u
        .timeline
        .iter()
        .rev()
        .filter(|t| scope.group.as_ref().is_none_or(|g| *g == t.group) && scope.backend.as_ref().is_none_or(|b| *b == t.backend))
        .filter(|t| matches(&scope.filter, &timeline_haystack(t)));
    let mut any = false;
    for t in shown {
        any = true;
        timeline_item(&mut out, t, u.now_ms);
    }
    out.push_str("</ol>");
    if !any {
        out.push_str("<p class=\"empty\" id=\"timeline-empty\">No transitions since the daemon started.</p>");
    }
    out.push_str("</section></main></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "<script>alert(1)</script>\"'&<img src=x onerror=alert(2)>";

    fn view() -> Update {
        let b = BackendView {
            name: "b".into(),
            status: "UNHEALTHY",
            routable: false,
            reason: "CONNECTION_REFUSED",
            message: HOSTILE.into(),
            protocol: HOSTILE.into(),
            server: HOSTILE.into(),
            origin: HOSTILE.into(),
            latency_ms: Some(1.5),
            last_transition_ms: Some(1_000),
            spark: vec![1.0, 2.0],
        };
        Update {
            kind: "snapshot",
            revision: 7,
            now_ms: 61_000,
            since_ms: 0,
            groups: vec![GroupView {
                name: "g".into(),
                phase: "FAILED",
                routable: 0,
                total: 1,
                message: HOSTILE.into(),
                source: "API",
                backends: vec![b],
            }],
            deleted: vec![],
            timeline: vec![TimelineView {
                seq: 1,
                at_ms: 1_000,
                group: "g".into(),
                backend: "b".into(),
                from: "HEALTHY",
                to: "UNHEALTHY",
                reason: "CONNECTION_REFUSED",
                message: HOSTILE.into(),
                latency_ms: None,
            }],
        }
    }

    #[test]
    fn every_text_is_escaped() {
        let html = render(
            &view(),
            &Scope {
                filter: HOSTILE.to_owned(),
                ..Scope::default()
            },
        );
        // The filter matches nothing, so the row is hidden; render unfiltered too.
        let all = render(&view(), &Scope::default());
        for page in [&html, &all] {
            assert!(!page.contains("<script>alert"), "{page}");
            assert!(!page.contains("<img"), "{page}");
            assert_eq!(page.matches("<script").count(), 1, "only our own script tag: {page}");
        }
        assert!(all.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;&lt;img src=x onerror=alert(2)&gt;"));
        assert!(all.contains("data-status=\"UNHEALTHY\""));
        assert!(all.contains("✖</span> UNHEALTHY"), "status has an icon and text, not colour alone");
        assert!(all.contains("a restart starts a fresh history"));
    }

    #[test]
    fn scope_and_filter_select_rows() {
        let u = view();
        let rows = |scope: Scope| render(&u, &scope).matches("class=\"backend ").count();
        assert_eq!(rows(Scope::default()), 1);
        assert_eq!(
            rows(Scope {
                filter: "unhealthy".into(),
                ..Scope::default()
            }),
            1
        );
        assert_eq!(
            rows(Scope {
                filter: "healthy-not".into(),
                ..Scope::default()
            }),
            0
        );
        assert_eq!(
            rows(Scope {
                group: Some("g".into()),
                backend: Some("b".into()),
                ..Scope::default()
            }),
            1
        );
        assert_eq!(
            rows(Scope {
                group: Some("g".into()),
                backend: Some("x".into()),
                ..Scope::default()
            }),
            0
        );
    }

    #[test]
    fn iso_and_ago() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_800_000_000_000), "2027-01-15T08:00:00Z");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(ago(61_000, 1_000), "1 min ago");
        assert_eq!(ago(5_000, 1_000), "4 s ago");
        assert_eq!(ago(0, 1_000), "0 s ago");
    }

    #[test]
    fn sparkline_is_numbers_only() {
        assert_eq!(sparkline(&[]), "");
        assert!(sparkline(&[3.0]).contains("<circle"));
        let s = sparkline(&[1.0, 2.0, 4.0]);
        assert!(s.contains("points=\"0.0,11.5 30.0,8.0 60.0,1.0\""), "{s}");
    }
}
