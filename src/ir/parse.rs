//! Reads the IR's text form back (the inverse of [`print_function`]).
//!
//! In: text as [`print_function`] writes it. Out: the [`Function`], with every
//! instruction's type computed from its op ([`Function::try_push`]) and checked against
//! the type written beside it, or a [`ParseError`] naming the line. Dimension names get
//! [`DimVar`]s in the order they first appear, which for printed functions is the order
//! of their arguments' declarations: `parse_function(&print_function(f))` is `f`.
//!
//! Tests write IR as text this way, and a pass is then tested text in, text out.

use super::print::{binary_name, compare_name, reduce_name, unary_name};
use super::*;

/// Why IR text could not be read.
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    /// The 1-based line.
    pub line: usize,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses one function in the IR's text form.
pub fn parse_function(text: &str) -> Result<Function, ParseError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(k, line)| (k + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty());
    let (header_line, header) = lines.next().ok_or(ParseError {
        line: 1,
        message: "expected `func NAME(ARGS) {`".into(),
    })?;
    let mut parser = Parser {
        func: Function::default(),
        tokens: tokens(header),
        at: 0,
        line: header_line,
    };
    parser.header()?;
    let mut returned = false;
    for (line, text) in lines {
        parser.start(line, text);
        if returned {
            parser.expect("}")?;
            parser.end()?;
            return Ok(parser.func);
        }
        if parser.peek() == Some("return") {
            parser.next()?;
            parser.results()?;
            returned = true;
        } else {
            parser.instruction()?;
        }
        parser.end()?;
    }
    Err(ParseError {
        line: text.lines().count().max(1),
        message: if returned {
            "expected `}` after `return`".into()
        } else {
            "expected `return` and `}`".into()
        },
    })
}

/// Splits a line into words (names, numbers, `v3`) and the punctuation `()[],:={}`.
fn tokens(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    for (k, c) in line.char_indices() {
        let punctuation = "()[],:={}".contains(c);
        if punctuation || c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push(&line[s..k]);
            }
            if punctuation {
                out.push(&line[k..k + 1]);
            }
        } else if start.is_none() {
            start = Some(k);
        }
    }
    if let Some(s) = start {
        out.push(&line[s..]);
    }
    out
}

/// The function read so far and the tokens of the current line.
struct Parser<'t> {
    func: Function,
    tokens: Vec<&'t str>,
    at: usize,
    line: usize,
}

impl<'t> Parser<'t> {
    fn start(&mut self, line: usize, text: &'t str) {
        (self.tokens, self.at, self.line) = (tokens(text), 0, line);
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            line: self.line,
            message: message.into(),
        })
    }

    fn peek(&self) -> Option<&'t str> {
        self.tokens.get(self.at).copied()
    }

    fn next(&mut self) -> Result<&'t str, ParseError> {
        match self.peek() {
            Some(token) => {
                self.at += 1;
                Ok(token)
            }
            None => self.error("unexpected end of line"),
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), ParseError> {
        match self.next()? {
            found if found == token => Ok(()),
            found => self.error(format!("expected `{token}`, found `{found}`")),
        }
    }

    /// Takes `token` if it is next.
    fn accept(&mut self, token: &str) -> bool {
        let next = self.peek() == Some(token);
        self.at += usize::from(next);
        next
    }

    fn end(&self) -> Result<(), ParseError> {
        match self.peek() {
            None => Ok(()),
            Some(extra) => self.error(format!("unexpected `{extra}` at the end of the line")),
        }
    }

    /// `func NAME(ARG, ...) {`, each ARG `[param] NAME: TYPE`.
    fn header(&mut self) -> Result<(), ParseError> {
        self.expect("func")?;
        self.func.name = self.next()?.to_string();
        self.expect("(")?;
        while !self.accept(")") {
            if !self.func.args.is_empty() {
                self.expect(",")?;
            }
            let role = if self.accept("param") {
                ArgRole::Param
            } else {
                ArgRole::Input
            };
            let name = self.next()?.to_string();
            self.expect(":")?;
            let ty = self.ty()?;
            self.func.args.push(ArgDecl { name, role, ty });
        }
        self.expect("{")?;
        self.end()
    }

    /// `real`, `int[B]`, `real[B, 3]`...
    fn ty(&mut self) -> Result<Type, ParseError> {
        let elem = match self.next()? {
            "real" => Elem::Real,
            "int" => Elem::Int,
            "bool" => Elem::Bool,
            other => return self.error(format!("expected a type, found `{other}`")),
        };
        let shape = if self.peek() == Some("[") {
            self.shape()?
        } else {
            Vec::new()
        };
        Ok(Type { elem, shape })
    }

    /// `[D, ...]`: dimension names and literal sizes.
    fn shape(&mut self) -> Result<Shape, ParseError> {
        self.expect("[")?;
        let mut shape = Vec::new();
        while !self.accept("]") {
            if !shape.is_empty() {
                self.expect(",")?;
            }
            shape.push(self.dim()?);
        }
        Ok(shape)
    }

    fn dim(&mut self) -> Result<Dim, ParseError> {
        let word = self.next()?;
        if let Ok(n) = word.parse::<u64>() {
            return Ok(Dim::Const(n));
        }
        if !word.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            return self.error(format!("expected a dimension, found `{word}`"));
        }
        let var = match self.func.dims.iter().position(|d| d == word) {
            Some(k) => k,
            None => {
                self.func.dims.push(word.to_string());
                self.func.dims.len() - 1
            }
        };
        Ok(Dim::Sym(DimVar(var as u32)))
    }

    fn dim_var(&mut self) -> Result<DimVar, ParseError> {
        match self.dim()? {
            Dim::Sym(var) => Ok(var),
            Dim::Const(n) => self.error(format!("expected a dimension name, found `{n}`")),
        }
    }

    /// `v3`, defined above.
    fn value(&mut self) -> Result<Value, ParseError> {
        let word = self.next()?;
        match word.strip_prefix('v').and_then(|n| n.parse::<u32>().ok()) {
            Some(n) if (n as usize) < self.func.insts.len() => Ok(Value(n)),
            Some(_) => self.error(format!("`{word}` is used before it is defined")),
            None => self.error(format!("expected a value such as `v3`, found `{word}`")),
        }
    }

    /// `a, b`.
    fn two_values(&mut self) -> Result<(Value, Value), ParseError> {
        let a = self.value()?;
        self.expect(",")?;
        Ok((a, self.value()?))
    }

    fn number<T: std::str::FromStr>(&mut self, what: &str) -> Result<T, ParseError> {
        let word = self.next()?;
        match word.parse() {
            Ok(n) => Ok(n),
            Err(_) => self.error(format!("expected {what}, found `{word}`")),
        }
    }

    /// `axes [0, 1]`.
    fn axes(&mut self) -> Result<Axes, ParseError> {
        self.expect("axes")?;
        self.expect("[")?;
        let mut axes = 0u8;
        while !self.accept("]") {
            if axes != 0 {
                self.expect(",")?;
            }
            let axis: u8 = self.number("an axis")?;
            if axis >= 8 {
                return self.error(format!("axis {axis} is out of range"));
            }
            axes |= 1 << axis;
        }
        Ok(Axes(axes))
    }

    /// `vK = OP : TYPE`, appended to the function.
    fn instruction(&mut self) -> Result<(), ParseError> {
        let defined = self.next()?;
        let expected = format!("v{}", self.func.insts.len());
        if defined != expected {
            return self.error(format!("expected `{expected} = ...`, found `{defined}`"));
        }
        self.expect("=")?;
        let op = self.op()?;
        self.expect(":")?;
        let written = self.ty()?;
        match self.func.try_push(op) {
            Ok(v) if *self.func.ty(v) == written => Ok(()),
            Ok(v) => {
                let computed = type_text(&self.func, self.func.ty(v));
                let written = type_text(&self.func, &written);
                self.error(format!("the op gives {computed}, not {written}"))
            }
            Err(message) => self.error(message),
        }
    }

    /// The right-hand side of an instruction (see [`op_text`]).
    fn op(&mut self) -> Result<Op, ParseError> {
        let name = self.next()?;
        let op = match name {
            "arg" => {
                let arg = self.next()?;
                match self.func.args.iter().position(|a| a.name == arg) {
                    Some(k) => Op::Arg(k as u32),
                    None => return self.error(format!("no argument `{arg}`")),
                }
            }
            "const" => Op::Const(self.number("a number")?),
            "const_int" => Op::ConstInt(self.number("an integer")?),
            "dim" => Op::DimSize(self.dim_var()?),
            "select" => {
                let mask = self.value()?;
                self.expect(",")?;
                let (a, b) = self.two_values()?;
                Op::Select(mask, a, b)
            }
            "broadcast" | "reshape" => {
                let x = self.value()?;
                self.expect("to")?;
                let shape = self.shape()?;
                if name == "broadcast" {
                    Op::Broadcast(x, shape)
                } else {
                    Op::Reshape(x, shape)
                }
            }
            "transpose" => Op::Transpose(self.value()?),
            "logsumexp" => {
                let x = self.value()?;
                Op::LogSumExp(x, self.axes()?)
            }
            "softmax" | "log_softmax" => {
                let x = self.value()?;
                self.expect("axis")?;
                let axis = self.number("an axis")?;
                if name == "softmax" {
                    Op::Softmax(x, axis)
                } else {
                    Op::LogSoftmax(x, axis)
                }
            }
            "matmul" => {
                let (a, b) = self.two_values()?;
                Op::MatMul(a, b)
            }
            "gather" => {
                let (table, index) = self.two_values()?;
                Op::Gather(table, index)
            }
            "scatter_add" => {
                let (rows, index) = self.two_values()?;
                self.expect("rows")?;
                Op::ScatterAdd(rows, index, self.dim()?)
            }
            "pick" => {
                let (x, labels) = self.two_values()?;
                Op::Pick(x, labels)
            }
            "onehot" => {
                let labels = self.value()?;
                self.expect("depth")?;
                Op::OneHot(labels, self.dim()?)
            }
            _ => {
                if let Some(&op) = UnaryOp::ALL.iter().find(|&&op| unary_name(op) == name) {
                    Op::Unary(op, self.value()?)
                } else if let Some(&op) = BinaryOp::ALL.iter().find(|&&op| binary_name(op) == name)
                {
                    let (a, b) = self.two_values()?;
                    Op::Binary(op, a, b)
                } else if let Some(&op) = CmpOp::ALL.iter().find(|&&op| compare_name(op) == name) {
                    let (a, b) = self.two_values()?;
                    Op::Compare(op, a, b)
                } else if let Some(&op) = ReduceOp::ALL.iter().find(|&&op| reduce_name(op) == name)
                {
                    let x = self.value()?;
                    Op::Reduce(op, x, self.axes()?)
                } else {
                    return self.error(format!("unknown op `{name}`"));
                }
            }
        };
        Ok(op)
    }

    /// After `return`: `loss = v4, output p = v7, grad W = v9`.
    fn results(&mut self) -> Result<(), ParseError> {
        while self.peek().is_some() {
            if !self.func.results.is_empty() {
                self.expect(",")?;
            }
            let (name, role) = match self.next()? {
                "loss" => ("loss".to_string(), ResultRole::Loss),
                "output" => (self.next()?.to_string(), ResultRole::Output),
                "grad" => {
                    let param = self.next()?;
                    match self.func.args.iter().position(|a| a.name == param) {
                        Some(k) => (param.to_string(), ResultRole::Grad(k as u32)),
                        None => return self.error(format!("no argument `{param}`")),
                    }
                }
                other => {
                    return self.error(format!(
                        "expected `loss`, `output` or `grad`, found `{other}`"
                    ))
                }
            };
            self.expect("=")?;
            let value = self.value()?;
            self.func.results.push(FuncResult { name, role, value });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse_function(text).expect_err("an error").to_string()
    }

    #[test]
    fn printed_text_reads_back_as_the_same_function() {
        let text = "func grad(x: real[N], param W: real[N, 3], i: int) {
  v0 = arg x : real[N]
  v1 = arg W : real[N, 3]
  v2 = const -0.5 : real
  v3 = broadcast v2 to [N] : real[N]
  v4 = mul v0, v3 : real[N]
  v5 = sum v4 axes [0] : real
  v6 = transpose v1 : real[3, N]
  v7 = arg i : int
  v8 = gather v6, v7 : real[N]
  v9 = gt v8, v4 : bool[N]
  v10 = select v9, v8, v4 : real[N]
  v11 = dim N : real
  return loss = v5, output y = v10, grad W = v1
}
";
        let func = parse_function(text).unwrap();
        assert_eq!(func.dims, vec!["N".to_string()]);
        assert_eq!(func.results[2].role, ResultRole::Grad(1));
        assert_eq!(verify(&func), Ok(()));
        assert_eq!(print_function(&func), text);
    }

    #[test]
    fn errors_name_the_line_and_what_is_wrong() {
        let header = "func f(x: real[N]) {\n  v0 = arg x : real[N]\n";
        let cases = [
            (
                "  v1 = mul v0, v2 : real[N]\n",
                "line 3: `v2` is used before it is defined",
            ),
            (
                "  v2 = neg v0 : real[N]\n",
                "line 3: expected `v1 = ...`, found `v2`",
            ),
            (
                "  v1 = sum v0 axes [0] : real[N]\n",
                "line 3: the op gives real, not real[N]",
            ),
            (
                "  v1 = frobnicate v0 : real[N]\n",
                "line 3: unknown op `frobnicate`",
            ),
            ("  v1 = matmul v0, v0 : real\n", "line 3: "),
            (
                "  return loss = v0 extra\n",
                "line 3: expected `,`, found `extra`",
            ),
            (
                "  return loss = v0\n",
                "line 3: expected `}` after `return`",
            ),
        ];
        for (line, expected) in cases {
            let message = error(&format!("{header}{line}"));
            assert!(message.starts_with(expected), "{line:?}: {message}");
        }
        assert_eq!(error(""), "line 1: expected `func NAME(ARGS) {`");
        assert!(error("func f(x: real[N] {").contains("expected `,`, found `{`"));
    }
}
