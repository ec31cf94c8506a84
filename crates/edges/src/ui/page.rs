//! Server-rendered HTML of the status page (the snapshot that works without
//! JavaScript), written with `maud`: every spliced value is escaped, and
//! nothing here is `PreEscaped`.

use maud::{DOCTYPE, Markup, html};

use super::model::{BackendView, Badge, EndpointView, GroupView, TimelineView, Update};

/// Which part of the state a page shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    pub group: Option<String>,
    pub backend: Option<String>,
    /// The filter box's text (`?q=`): matched against names, statuses, reasons and messages.
    pub filter: String,
}

impl Scope {
    /// The page's own path, the filter form's action (escaped where it is spliced).
    fn path(&self) -> String {
        match (&self.group, &self.backend) {
            (Some(g), Some(b)) => format!("/g/{g}/b/{b}"),
            (Some(g), None) => format!("/g/{g}"),
            _ => "/".to_owned(),
        }
    }
}

/// A status or phase: its icon and its word, never colour alone. `kind` is
/// `st` (status) or `ph` (phase); the tone (`data-tone`) picks the colours.
fn badge(kind: &str, name: &str, badge: Badge) -> Markup {
    html! {
        span class={ "badge " (kind) "-" (name.to_ascii_lowercase()) } data-tone=(badge.tone) {
            span aria-hidden="true" { (badge.icon) } " " (name)
        }
    }
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

fn time(now_ms: u64, at_ms: u64) -> Markup {
    html! { time datetime=(iso(at_ms)) data-ms=(at_ms) { (ago(now_ms, at_ms)) } }
}

/// A small inline SVG line of per-minute mean latencies (numbers only).
pub fn sparkline(points: &[f64]) -> Markup {
    const W: f64 = 60.0;
    const H: f64 = 16.0;
    let max = points.iter().copied().fold(0.0_f64, f64::max);
    if points.is_empty() {
        return html! {};
    }
    let y = |v: f64| if max > 0.0 { H - 1.0 - v / max * (H - 2.0) } else { H - 1.0 };
    let label = format!("latency per minute over the last hour, max {max:.1} ms");
    html! {
        svg class="spark" viewBox="-2 0 64 16" width="64" height="16" role="img" aria-label=(label) {
            @if points.len() == 1 {
                // One minute so far: a dot at "now" on a faint axis of the hour.
                line x1="0" y1=(H - 1.0) x2=(W) y2=(H - 1.0) stroke="currentColor" stroke-opacity="0.3" {}
                circle cx=(W) cy=(format!("{:.1}", y(points[0]))) r="2" fill="currentColor" {}
            } @else {
                @let step = W / (points.len() - 1) as f64;
                @let pts: Vec<String> = points.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, y(*v))).collect();
                polyline fill="none" stroke="currentColor" stroke-width="1.5" points=(pts.join(" ")) {}
            }
        }
    }
}

/// The text the filter box matches for a backend row.
pub fn backend_haystack(g: &GroupView, b: &BackendView) -> String {
    format!("{} {} {} {} {} {} {}", g.name, b.name, b.status, b.reason, b.message, b.server, b.protocol).to_lowercase()
}

fn group_haystack(g: &GroupView) -> String {
    format!("{} {} {}", g.name, g.phase, g.message).to_lowercase()
}

fn timeline_haystack(t: &TimelineView) -> String {
    format!("{}/{} {} {} {} {} {}", t.group, t.backend, t.endpoint, t.from, t.to, t.reason, t.message).to_lowercase()
}

fn matches(filter: &str, haystack: &str) -> bool {
    filter.split_whitespace().all(|w| haystack.contains(&w.to_lowercase()))
}

fn backend_row(g: &GroupView, b: &BackendView, now_ms: u64) -> Markup {
    let key = format!("{}/{}", g.name, b.name);
    html! {
        tr id={ "b-" (key) } class={ "backend st-" (b.status.to_ascii_lowercase()) } data-backend=(key) data-status=(b.status) data-tone=(b.status_badge.tone) {
            th scope="row" {
                a href={ "/g/" (g.name) "/b/" (b.name) } { (b.name) }
                div.origin { (b.origin) }
            }
            td {
                (badge("st", b.status, b.status_badge))
                div.routable {
                    @if let Some(cause) = &b.ejected { "ejected: " (cause) } @else if b.routable { "routable" } @else { "not routable" }
                }
            }
            td {
                code { (b.reason) }
                div.msg { (b.message) }
            }
            td { @if b.protocol.is_empty() { "–" } @else { (b.protocol) } }
            td.latency {
                @match b.latency_ms {
                    Some(ms) => (super::model::ms_text(ms)),
                    None => "–",
                }
                " " (sparkline(&b.spark))
            }
            td {
                @match b.last_transition_ms {
                    Some(t) => (time(now_ms, t)),
                    None => "–",
                }
            }
            td.server { (b.server) }
        }
        @for e in &b.endpoints { (endpoint_row(&key, e)) }
    }
}

/// One endpoint of a discovered backend, a row under it; `data-endpoint-of`
/// (not `data-backend`) so a backend stays one `tr[data-backend]`.
fn endpoint_row(key: &str, e: &EndpointView) -> Markup {
    html! {
        tr class={ "endpoint st-" (e.status.to_ascii_lowercase()) } data-endpoint-of=(key) data-address=(e.address) data-status=(e.status) data-tone=(e.status_badge.tone) {
            th scope="row" { span.endpoint-address { "↳ " (e.address) } }
            td {
                (badge("st", e.status, e.status_badge))
                div.routable {
                    @if !e.place.is_empty() { (e.place) } @else if e.routable { "routable" } @else { "not routable" }
                }
            }
            td {
                code { (e.reason) }
                div.msg { (e.message) }
            }
            td { "–" }
            td.latency {
                @match e.latency_ms {
                    Some(ms) => (super::model::ms_text(ms)),
                    None => "–",
                }
            }
            td { "–" }
            td.server {}
        }
    }
}

fn group_article(g: &GroupView, scope: &Scope, now_ms: u64) -> Option<Markup> {
    let backends: Vec<&BackendView> = g
        .backends
        .iter()
        .filter(|b| scope.backend.as_ref().is_none_or(|want| *want == b.name))
        .filter(|b| matches(&scope.filter, &backend_haystack(g, b)))
        .collect();
    // A group shows when a backend matches, or its own name, phase or message does.
    if backends.is_empty() && !matches(&scope.filter, &group_haystack(g)) {
        return None;
    }
    Some(html! {
        article class={ "group ph-" (g.phase.to_ascii_lowercase()) } id={ "g-" (g.name) } data-group=(g.name) data-phase=(g.phase) data-tone=(g.phase_badge.tone) {
            h3 { a href={ "/g/" (g.name) } { (g.name) } " " (badge("ph", g.phase, g.phase_badge)) }
            p.meta {
                (g.routable) " of " (g.total) " routable"
                @if !g.source.is_empty() { " · from the " (g.source) }
            }
            p.msg { (g.message) }
            @if !backends.is_empty() {
                table.backends {
                    thead { tr {
                        @for h in ["Backend", "Status", "Reason", "Protocol", "Latency", "Last transition", "Server"] {
                            th scope="col" { (h) }
                        }
                    } }
                    tbody { @for b in backends { (backend_row(g, b, now_ms)) } }
                }
            }
        }
    })
}

fn timeline_item(t: &TimelineView, now_ms: u64) -> Markup {
    html! {
        li data-group=(t.group) data-backend={ (t.group) "/" (t.backend) } data-seq=(t.seq) {
            (time(now_ms, t.at_ms)) " "
            a href={ "/g/" (t.group) "/b/" (t.backend) } { (t.group) "/" (t.backend) } " "
            @if !t.endpoint.is_empty() { span.endpoint-address { "endpoint " (t.endpoint) } " " }
            (badge("st", t.from, t.from_badge)) " → " (badge("st", t.to, t.to_badge)) " "
            code { (t.reason) } " "
            span.msg {
                (t.message)
                @if let Some(l) = t.latency_ms { " (" (super::model::ms_text(l)) ")" }
            }
        }
    }
}

/// The whole page for `scope`, from a snapshot `Update`.
pub fn render(u: &Update, scope: &Scope) -> String {
    let title = match (&scope.group, &scope.backend) {
        (Some(g), Some(b)) => format!("{g}/{b} · mcp-health"),
        (Some(g), None) => format!("{g} · mcp-health"),
        _ => "mcp-health status".to_owned(),
    };
    let articles: Vec<Markup> = u.groups.iter().filter_map(|g| group_article(g, scope, u.now_ms)).collect();
    let shown: Vec<&TimelineView> = u
        .timeline
        .iter()
        .rev()
        .filter(|t| scope.group.as_ref().is_none_or(|g| *g == t.group) && scope.backend.as_ref().is_none_or(|b| *b == t.backend))
        .filter(|t| matches(&scope.filter, &timeline_haystack(t)))
        .collect();
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/app.js" defer {}
            }
            body data-group=(scope.group.as_deref().unwrap_or("")) data-backend=(scope.backend.as_deref().unwrap_or("")) data-since=(u.since_ms) data-revision=(u.revision) {
                header {
                    h1 {
                        a href="/" { "mcp-health" }
                        @match (&scope.group, &scope.backend) {
                            (Some(g), Some(b)) => { " / " a href={ "/g/" (g) } { (g) } " / " (b) }
                            (Some(g), None) => { " / " (g) }
                            _ => {}
                        }
                    }
                    p.since {
                        "History since " (time(u.now_ms, u.since_ms))
                        ", when this daemon started: it is kept in memory, so a restart starts a fresh history."
                    }
                    form.filter method="get" action=(scope.path()) role="search" {
                        label for="q" { "Filter" } " "
                        input #q name="q" type="search" value=(scope.filter) placeholder="group, backend, status, reason" autocomplete="off";
                        " " button type="submit" { "Apply" }
                    }
                    p #live .live role="status" aria-live="polite" { "Snapshot at " (iso(u.now_ms)) "; reload for newer." }
                    @if let Some(d) = &u.doubt {
                        p #doubt .doubt.tone-warn role="alert" {
                            "⚠ This prober doubts itself (" (d.causes) ") since " (time(u.now_ms, d.since_ms)) ". "
                            @match (d.holding, d.holds_until_ms) {
                                (true, Some(until)) => { "Failing probes move no verdict until it trusts itself again, at the latest until " time datetime=(iso(until)) { (iso(until)) } "." }
                                _ => { "Its hold is over: failing probes move verdicts again." }
                            }
                        }
                    }
                }
                main {
                    section aria-labelledby="groups-h" {
                        h2 #groups-h { "Groups" }
                        div #groups {
                            @for a in &articles { (a) }
                            @if articles.is_empty() { p.empty { "Nothing to show." } }
                        }
                    }
                    section aria-labelledby="tl-h" {
                        h2 #tl-h { @if scope.backend.is_some() { "Transitions of this backend" } @else { "Recent transitions" } }
                        ol #timeline reversed { @for t in &shown { (timeline_item(t, u.now_ms)) } }
                        @if shown.is_empty() { p.empty #timeline-empty { "No transitions since the daemon started." } }
                    }
                }
            }
        }
    };
    page.into_string()
}

/// A small page of our own with one message (not found, unavailable); the
/// message may quote what the request asked for, and is escaped like any text.
pub fn message_page(heading: &str, message: &str) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (heading.to_lowercase()) " · mcp-health" }
                link rel="stylesheet" href="/assets/style.css";
            }
            body { main {
                h1 { (heading) }
                p { (message) }
                p { a href="/" { "All groups" } }
            } }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::model::{Shown, shown};
    use mcp_health_proto::v1::{BackendStatus, GroupPhase};

    const HOSTILE: &str = "<script>alert(1)</script>\"'&<img src=x onerror=alert(2)>";

    fn view() -> Update {
        let (status, status_badge) = shown(Shown::Status(BackendStatus::Unhealthy));
        let (phase, phase_badge) = shown(Shown::Phase(GroupPhase::Failed));
        let b = BackendView {
            name: "b".into(),
            status,
            status_badge,
            routable: false,
            ejected: Some(HOSTILE.into()),
            reason: "CONNECTION_REFUSED",
            message: HOSTILE.into(),
            protocol: HOSTILE.into(),
            server: HOSTILE.into(),
            origin: HOSTILE.into(),
            latency_ms: Some(1.5),
            last_transition_ms: Some(1_000),
            spark: vec![1.0, 2.0],
            endpoints: vec![],
        };
        Update {
            kind: "snapshot",
            revision: 7,
            now_ms: 61_000,
            since_ms: 0,
            groups: vec![GroupView {
                name: "g".into(),
                phase,
                phase_badge,
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
                from_badge: shown(Shown::Status(BackendStatus::Healthy)).1,
                to_badge: status_badge,
                endpoint: String::new(),
            }],
            doubt: None,
        }
    }

    #[test]
    fn a_doubting_prober_shows_a_banner_with_its_causes_and_hold() {
        let plain = render(&view(), &Scope::default());
        assert!(!plain.contains("id=\"doubt\""), "no banner while it trusts itself");
        let mut u = view();
        u.doubt = Some(super::super::model::DoubtBanner {
            causes: "canaries".into(),
            since_ms: 1_000,
            holding: true,
            holds_until_ms: Some(121_000),
        });
        let page = render(&u, &Scope::default());
        assert!(page.contains("id=\"doubt\""), "{page}");
        assert!(page.contains("doubts itself (canaries)"), "{page}");
        assert!(page.contains("move no verdict") && page.contains(&iso(121_000)), "{page}");
        u.doubt = Some(super::super::model::DoubtBanner {
            holding: false,
            ..u.doubt.clone().unwrap()
        });
        let page = render(&u, &Scope::default());
        assert!(page.contains("hold is over"), "{page}");
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
        // Every attribute is double-quoted, so a single quote needs no escape.
        assert!(all.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;'&amp;&lt;img src=x onerror=alert(2)&gt;"));
        assert!(all.contains("data-status=\"UNHEALTHY\""));
        assert!(all.contains("✖</span> UNHEALTHY"), "status has an icon and text, not colour alone");
        assert!(all.contains("a restart starts a fresh history"));
    }

    /// A discovered backend's endpoints are rows under it (address, status
    /// with its icon, why it is out of routing, reason), escaped, and carry
    /// no `data-backend`: the backend stays one row for the filter and links.
    #[test]
    fn a_discovered_backends_endpoints_are_rows_under_it_escaped() {
        let mut u = view();
        let (status, status_badge) = shown(Shown::Status(BackendStatus::Healthy));
        let (down, down_badge) = shown(Shown::Status(BackendStatus::Unhealthy));
        let row = |address: &str, status, status_badge, place: &'static str, message: &str| EndpointView {
            address: address.into(),
            status,
            status_badge,
            routable: place.is_empty() && status == "HEALTHY",
            place,
            reason: "OK",
            message: message.into(),
            latency_ms: Some(2.5),
        };
        u.groups[0].backends[0].endpoints = vec![
            row("10.0.0.1:80", status, status_badge, "", "handshake succeeded"),
            row("10.0.0.2:80", down, down_badge, "drained", HOSTILE),
            row("169.254.169.254:80", down, down_badge, "refused", "link-local"),
        ];
        let all = render(&u, &Scope::default());
        assert!(!all.contains("<img"), "{all}");
        assert_eq!(all.matches("<tr class=\"endpoint ").count(), 3, "{all}");
        assert_eq!(
            all.matches("data-backend=\"g/b\"").count(),
            2,
            "the backend row and its timeline entry only: {all}"
        );
        let first = all.find("data-address=\"10.0.0.1:80\"").expect("first endpoint");
        let second = all.find("data-address=\"10.0.0.2:80\"").expect("second endpoint");
        let backend = all.find("id=\"b-g/b\"").expect("backend row");
        assert!(backend < first && first < second, "endpoints under their backend, in order");
        let drained = &all[second..];
        assert!(drained.contains("✖</span> UNHEALTHY"), "{drained}");
        assert!(drained.contains(">drained<"), "{drained}");
        assert!(drained.contains("&lt;script&gt;alert(1)"), "{drained}");
        assert!(all[first..second].contains(">routable<"));
        assert!(all.contains(">refused<"));
        // A timeline entry about one endpoint names it.
        u.timeline[0].endpoint = "10.0.0.2:80".into();
        let with_entry = render(&u, &Scope::default());
        assert!(
            with_entry.contains("<span class=\"endpoint-address\">endpoint 10.0.0.2:80</span>"),
            "{with_entry}"
        );
        assert!(!all.contains(">endpoint 10.0.0.2:80<"), "the backend's own entry names none");
        // Filtered out, the backend's endpoints go with it.
        let none = render(
            &u,
            &Scope {
                filter: "nothing-matches-this".into(),
                ..Scope::default()
            },
        );
        assert!(!none.contains("class=\"endpoint "), "{none}");
    }

    /// Group and backend names go into text, `href`, `id` and `data-*`
    /// attributes, the title, the crumbs and the filter form's action: a name
    /// that closes a quote and opens a script stays text in every one.
    #[test]
    fn a_backend_name_with_a_script_and_quotes_is_escaped() {
        const NAME: &str = "x\"'><script>alert(3)</script>";
        const ESCAPED: &str = "x&quot;'&gt;&lt;script&gt;alert(3)&lt;/script&gt;";
        let mut u = view();
        u.groups[0].name = NAME.into();
        u.groups[0].backends[0].name = NAME.into();
        u.timeline[0].group = NAME.into();
        u.timeline[0].backend = NAME.into();
        let scope = Scope {
            group: Some(NAME.into()),
            backend: Some(NAME.into()),
            ..Scope::default()
        };
        for page in [render(&u, &scope), render(&u, &Scope::default()), message_page("Not found", NAME)] {
            assert!(!page.contains("<script>alert"), "{page}");
            assert!(!page.contains("x\"'>"), "a name never closes an attribute: {page}");
            assert!(page.contains(ESCAPED), "{page}");
        }
        let page = render(&u, &scope);
        for attr in [
            format!("data-backend=\"{ESCAPED}/{ESCAPED}\""),
            format!("id=\"b-{ESCAPED}/{ESCAPED}\""),
            format!("href=\"/g/{ESCAPED}/b/{ESCAPED}\""),
            format!("action=\"/g/{ESCAPED}/b/{ESCAPED}\""),
            format!("<title>{ESCAPED}/{ESCAPED} · mcp-health</title>"),
            format!("<body data-group=\"{ESCAPED}\" data-backend=\"{ESCAPED}\""),
        ] {
            assert!(page.contains(&attr), "{attr} in {page}");
        }
        assert_eq!(page.matches("<script").count(), 1, "only our own script tag: {page}");
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
        assert_eq!(sparkline(&[]).into_string(), "");
        assert!(sparkline(&[3.0]).into_string().contains("<circle"));
        let s = sparkline(&[1.0, 2.0, 4.0]).into_string();
        assert!(s.contains("points=\"0.0,11.5 30.0,8.0 60.0,1.0\""), "{s}");
    }
}
