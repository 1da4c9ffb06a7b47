//! The AST as text (`gradc compile --emit ast`): one statement per line, every
//! expression fully parenthesised as an s-expression, so precedence and associativity
//! are visible at a glance. Deterministic.

use super::ast::*;

/// The whole file as text.
pub fn print_file(file: &File) -> String {
    let mut out = String::new();
    for item in &file.items {
        out.push_str(&print_item(item));
        out.push('\n');
    }
    out
}

fn print_type(ty: &Option<TypeAnn>) -> String {
    let Some(ty) = ty else {
        return "real".to_string();
    };
    let elem = match ty.elem {
        ElemAnn::Real => "real",
        ElemAnn::Int => "int",
    };
    if ty.dims.is_empty() {
        return elem.to_string();
    }
    let dims: Vec<String> = ty
        .dims
        .iter()
        .map(|d| match d {
            DimAnn::Lit(n, _) => n.to_string(),
            DimAnn::Name(id) => id.name.clone(),
        })
        .collect();
    format!("{elem}[{}]", dims.join(", "))
}

fn print_item(item: &Item) -> String {
    match item {
        Item::Input { name, ty, .. } => format!("(input {} {})", name.name, print_type(ty)),
        Item::Param { name, ty, .. } => format!("(param {} {})", name.name, print_type(ty)),
        Item::Let { name, value, .. } => format!("(let {} {})", name.name, print_expr(value)),
        Item::Fn {
            name, params, body, ..
        } => {
            let params: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
            format!(
                "(fn {} ({}) {})",
                name.name,
                params.join(" "),
                print_expr(body)
            )
        }
        Item::Output { name, value, .. } => {
            format!("(output {} {})", name.name, print_expr(value))
        }
        Item::Loss { value, .. } => format!("(loss {})", print_expr(value)),
    }
}

fn binop_text(op: BinOp) -> &'static str {
    match op {
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::MatMul => "@",
        BinOp::Pow => "^",
        BinOp::Lt => "<",
        BinOp::Le => "<=",
        BinOp::Gt => ">",
        BinOp::Ge => ">=",
        BinOp::Eq => "==",
        BinOp::Ne => "!=",
    }
}

/// One expression as an s-expression.
pub fn print_expr(expr: &Expr) -> String {
    let mut out = String::new();
    write_expr(expr, &mut out);
    out
}

/// Appends `expr` as an s-expression to `out` (on stack grown as deep nesting needs, see
/// [`crate::stack`]). One buffer for the whole expression: building each level's text
/// from its children's took time quadratic in the depth.
fn write_expr(expr: &Expr, out: &mut String) {
    crate::stack::with_room(|| match &expr.kind {
        ExprKind::Int(n) => out.push_str(&n.to_string()),
        ExprKind::Real(x) => out.push_str(&format!("{x:?}")),
        ExprKind::Name(n) => out.push_str(n),
        ExprKind::Neg(x) => write_form(out, "neg", [&**x]),
        ExprKind::Binary(op, a, b) => write_form(out, binop_text(*op), [&**a, &**b]),
        ExprKind::Call { func, args } => write_form(out, &func.name, args),
        ExprKind::Index { base, index } => write_form(out, "index", [&**base, &**index]),
        ExprKind::Transpose(x) => write_form(out, "T", [&**x]),
    })
}

/// `(head arg arg ...)`.
fn write_form<'e>(out: &mut String, head: &str, args: impl IntoIterator<Item = &'e Expr>) {
    out.push('(');
    out.push_str(head);
    for arg in args {
        out.push(' ');
        write_expr(arg, out);
    }
    out.push(')');
}
