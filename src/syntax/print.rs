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

/// One expression as an s-expression (on stack grown as deep nesting needs, see
/// [`crate::stack`]).
pub fn print_expr(expr: &Expr) -> String {
    crate::stack::with_room(|| match &expr.kind {
        ExprKind::Int(n) => n.to_string(),
        ExprKind::Real(x) => format!("{x:?}"),
        ExprKind::Name(n) => n.clone(),
        ExprKind::Neg(x) => format!("(neg {})", print_expr(x)),
        ExprKind::Binary(op, a, b) => {
            format!("({} {} {})", binop_text(*op), print_expr(a), print_expr(b))
        }
        ExprKind::Call { func, args } => {
            let mut s = format!("({}", func.name);
            for a in args {
                s.push(' ');
                s.push_str(&print_expr(a));
            }
            s.push(')');
            s
        }
        ExprKind::Index { base, index } => {
            format!("(index {} {})", print_expr(base), print_expr(index))
        }
        ExprKind::Transpose(x) => format!("(T {})", print_expr(x)),
    })
}
