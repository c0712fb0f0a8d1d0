//! A report as a list of blocks, rendered both as Markdown (figures
//! referenced beside it) and as a self-contained HTML page (figures inside
//! it, so the page can be mailed, archived or opened from anywhere).

pub enum Block {
    Title(String),
    Heading(String),
    /// A section within a heading's (one world of a figure over worlds).
    Subheading(String),
    Para(String),
    List(Vec<String>),
    Table {
        head: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    Image {
        src: String,
        alt: String,
    },
}

pub fn markdown(blocks: &[Block]) -> String {
    let mut s = String::new();
    for b in blocks {
        match b {
            Block::Title(t) => s.push_str(&format!("# {t}\n\n")),
            Block::Heading(t) => s.push_str(&format!("## {t}\n\n")),
            Block::Subheading(t) => s.push_str(&format!("### {t}\n\n")),
            Block::Para(t) => s.push_str(&format!("{t}\n\n")),
            Block::List(items) => {
                for i in items {
                    s.push_str(&format!("- {i}\n"));
                }
                s.push('\n');
            }
            Block::Table { head, rows } => {
                s.push_str(&format!(
                    "| {} |\n|{}|\n",
                    head.join(" | "),
                    head.iter().map(|_| "---").collect::<Vec<_>>().join("|")
                ));
                for r in rows {
                    s.push_str(&format!("| {} |\n", r.join(" | ")));
                }
                s.push('\n');
            }
            Block::Image { src, alt } => s.push_str(&format!("![{alt}]({src})\n\n")),
        }
    }
    s
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Inline Markdown the blocks use: `code` and [text](link).
fn inline(t: &str) -> String {
    let mut out = String::new();
    let e = esc(t);
    let mut code = false;
    for part in e.split('`') {
        if code {
            out.push_str(&format!("<code>{part}</code>"));
        } else {
            out.push_str(&bold(&links(part)));
        }
        code = !code;
    }
    out
}

fn bold(t: &str) -> String {
    let mut out = String::new();
    for (i, part) in t.split("**").enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("<strong>{part}</strong>"));
        } else {
            out.push_str(part);
        }
    }
    out
}

fn links(t: &str) -> String {
    let mut out = String::new();
    let mut rest = t;
    while let Some(open) = rest.find('[') {
        let Some(mid) = rest[open..].find("](").map(|m| open + m) else { break };
        let Some(close) = rest[mid..].find(')').map(|c| mid + c) else { break };
        out.push_str(&rest[..open]);
        out.push_str(&format!("<a href=\"{}\">{}</a>", &rest[mid + 2..close], &rest[open + 1..mid]));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The page; each image is read from `images` (the folder its `src` is
/// relative to) and embedded as a data: URI, or linked where it cannot be read.
pub fn html(blocks: &[Block], images: &std::path::Path) -> String {
    let mut s = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>tandem report</title>\n<style>body{font-family:sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f3f3f3}img{max-width:100%}code{background:#f3f3f3;padding:0 3px}</style></head><body>\n",
    );
    for b in blocks {
        match b {
            Block::Title(t) => s.push_str(&format!("<h1>{}</h1>\n", inline(t))),
            Block::Heading(t) => s.push_str(&format!("<h2>{}</h2>\n", inline(t))),
            Block::Subheading(t) => s.push_str(&format!("<h3>{}</h3>\n", inline(t))),
            Block::Para(t) => s.push_str(&format!("<p>{}</p>\n", inline(t))),
            Block::List(items) => {
                s.push_str("<ul>\n");
                for i in items {
                    s.push_str(&format!("<li>{}</li>\n", inline(i)));
                }
                s.push_str("</ul>\n");
            }
            Block::Table { head, rows } => {
                s.push_str("<table><tr>");
                for h in head {
                    s.push_str(&format!("<th>{}</th>", inline(h)));
                }
                s.push_str("</tr>\n");
                for r in rows {
                    s.push_str("<tr>");
                    for c in r {
                        s.push_str(&format!("<td>{}</td>", inline(c)));
                    }
                    s.push_str("</tr>\n");
                }
                s.push_str("</table>\n");
            }
            Block::Image { src, alt } => {
                let data = std::fs::read(images.join(src)).ok().map(|bytes| {
                    use base64::Engine;
                    let mime = if src.ends_with(".svg") { "image/svg+xml" } else { "image/png" };
                    format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
                });
                s.push_str(&format!("<p><img src=\"{}\" alt=\"{}\"></p>\n", data.unwrap_or_else(|| esc(src)), esc(alt)))
            }
        }
    }
    s.push_str("</body></html>\n");
    s
}
