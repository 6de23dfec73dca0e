//! How numbers and names are written for people: German numbers, the HTML of a report's parts (from its template,
//! every text escaped), file-name slugs.

use arrow::datatypes::DataType;

/// A number as German readers write it: `12.345` and `0,68`; symbols and text stay as they are.
pub fn german(text: &str, ty: &DataType) -> String {
    let (sign, digits) = text.strip_prefix('-').map_or(("", text), |d| ("-", d));
    if ty.is_integer() && digits.chars().all(|c| c.is_ascii_digit()) && !digits.is_empty() {
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push('.');
            }
            out.push(c);
        }
        return format!("{sign}{out}");
    }
    match (ty.is_floating(), text.parse::<f64>()) {
        (true, Ok(v)) => format!("{v:.2}").replace('.', ","),
        _ => text.to_owned(),
    }
}

/// The HTML of one part of a report — a table, tiles, a chart, a map or a text — from `templates/parts.html.j2`
/// (`context.part` says which), every text in it escaped.
pub(crate) fn html_part(context: minijinja::Value) -> crate::Result<String> {
    // Parsed once per process: a live dashboard draws its map on every request.
    static PARTS: std::sync::OnceLock<minijinja::Environment<'static>> = std::sync::OnceLock::new();
    let env = PARTS.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        env.add_template("parts", PARTS_TEMPLATE).expect("the parts template is part of the build and parses");
        env
    });
    Ok(env.get_template("parts")?.render(context)?)
}

/// Tables, tiles, charts, maps and texts in HTML, as macros.
const PARTS_TEMPLATE: &str = include_str!("../templates/parts.html.j2");

/// File-name friendly form of a title.
pub(crate) fn slug(text: &str) -> String {
    let s: String = text
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'ä' => 'a',
            'ö' => 'o',
            'ü' => 'u',
            'ß' => 's',
            c if c.is_ascii_alphanumeric() => c,
            _ => '-',
        })
        .collect();
    s.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-")
}
