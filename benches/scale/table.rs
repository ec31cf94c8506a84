//! The report: one row per figure with its target and verdict, printed as a
//! Markdown table; plus the sanity checks that smoke mode enforces.

/// One measured figure.
pub struct Row {
    pub scenario: String,
    pub figure: String,
    pub value: String,
    pub target: String,
    /// None when the figure has no target.
    pub met: Option<bool>,
}

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
    /// Harness failures (not slowness): a scenario that measured nothing.
    pub broken: Vec<String>,
}

impl Report {
    pub fn add(&mut self, scenario: &str, figure: &str, value: String, target: &str, met: Option<bool>) {
        self.rows.push(Row {
            scenario: scenario.into(),
            figure: figure.into(),
            value,
            target: target.into(),
            met,
        });
    }

    /// Records a harness failure unless `ok`.
    pub fn sanity(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            let what = what.into();
            eprintln!("HARNESS CHECK FAILED: {what}");
            self.broken.push(what);
        }
    }

    pub fn print(&self) {
        println!("| Scenario | Figure | Value | Target | Met |");
        println!("|---|---|---|---|---|");
        for r in &self.rows {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            println!("| {} | {} | {} | {} | {} |", r.scenario, r.figure, r.value, r.target, met);
        }
    }
}

/// Formats a number with sensible precision.
pub fn num(x: f64) -> String {
    if x.is_nan() {
        "n/a".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}
