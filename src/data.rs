//! Call-time data: binding inputs and params to a function, and the JSON formats.
//!
//! In: a [`Function`] and its data, as `DATA.json` text ([`DataFile`], [`bind_data`]), a
//! JSON object ([`bind_json`]) or named tensors from the Rust API ([`bind_tensors`]).
//! Out: a [`Bound`] (the size of every symbolic dimension and one tensor per argument,
//! in declaration order) or a [`CallError`] naming the offending input and dimension.
//! Also the output side: tensors to JSON ([`tensor_to_json`]) and the `run` object
//! ([`run_output`]), and a deterministic random point for `gradcheck` without data
//! ([`random_point`]).
//!
//! Invariant: a `Bound` returned by the binders is safe to evaluate — every argument has
//! its declared element type and shape under `dims`, and every index lies in range for
//! every index operand of the function ([`check_indices`]). A gradient function has the
//! same arguments and the same index bounds as its forward function, so a `Bound` made
//! for one serves both.
//!
//! The JSON data format (spec §5): one object mapping every input and param name to a
//! number (rank 0), a list of numbers (rank 1) or a list of rows (rank 2). A `real`
//! accepts any JSON number and the strings `"NaN"`, `"Infinity"`, `"-Infinity"`; an
//! `int` accepts integral numbers only (`2` or `2.0`, not `2.5`; from text, not
//! `0.99999999999999999` either, though it parses to the f64 1). `[]` for a rank-1
//! argument has size 0. `[]` for a rank-2 argument has 0 rows and says nothing about
//! its columns: the column dimension is then taken from another argument (or is the
//! literal size), and if no other argument binds it the call fails with
//! [`CallError::UnboundDim`] rather than guessing.
//!
//! The output format: scalars as JSON numbers, rank 1 as lists, rank 2 as lists of rows,
//! every number in the shortest form that parses back to the same f64 (integral values
//! print as `2.0`), non-finite values as the strings above; objects are written with
//! `": "` and `", "` separators.

use std::fmt;

use serde_json::{Map, Number, Value as Json};

use crate::ir::{
    index_checks, ArgDecl, ArgRole, Dim, Elem, Function, IndexCheck, Op, ResultRole, Value,
};
use crate::shape::{checked_len, checked_numel, MAX_ELEMENTS};
use crate::tensor::{Tensor, TensorData};

/// Data bound to a function: ready to evaluate.
#[derive(Clone, Debug, PartialEq)]
pub struct Bound {
    /// The size of every symbolic dimension, indexed by `DimVar`.
    pub dims: Vec<usize>,
    /// One tensor per argument, in declaration order.
    pub args: Vec<Tensor>,
}

impl Bound {
    /// The arguments as compiled code takes them, in declaration order. A mask (which
    /// no argument is) is passed as an empty real array, which the call rejects by its
    /// length.
    pub fn arg_data(&self) -> Vec<crate::jit::ArgData<'_>> {
        self.args.iter().map(|t| arg_data(&t.data)).collect()
    }
}

/// One argument's data as compiled code takes it (see [`Bound::arg_data`]).
pub fn arg_data(data: &TensorData) -> crate::jit::ArgData<'_> {
    use crate::jit::ArgData;
    match data {
        TensorData::Real(x) => ArgData::Real(x),
        TensorData::Int(x) => ArgData::Int(x),
        TensorData::Bool(_) => ArgData::Real(&[]),
    }
}

/// A call-time error: the data does not fit the function. Every message names the
/// input or param at fault (and the dimension, where one is involved).
#[derive(Clone, Debug, PartialEq)]
pub enum CallError {
    /// `DATA.json` is not a JSON object.
    NotAnObject {
        /// What was found instead (`"a list"`...).
        found: String,
    },
    /// An input or param has no data.
    Missing {
        /// The argument's name.
        name: String,
    },
    /// Data given for a name that is neither an input nor a param.
    Unexpected {
        /// The name given.
        name: String,
    },
    /// The same name given twice (Rust API).
    Duplicate {
        /// The name given twice.
        name: String,
    },
    /// The data has the wrong rank (or is not an array of numbers at all).
    WrongRank {
        /// The argument's name.
        name: String,
        /// The declared type, e.g. `rank 2 ([B, D])`.
        expected: String,
        /// What was given, e.g. `a list of numbers`.
        found: String,
    },
    /// A rank-2 argument whose rows differ in length.
    Ragged {
        /// The argument's name.
        name: String,
        /// The name (or literal size) of the column dimension.
        dim: String,
        /// The number of columns expected (that of the first row).
        expected: usize,
        /// The row at fault.
        row: usize,
        /// Its length.
        found: usize,
    },
    /// An axis declared with a literal size has another size.
    WrongSize {
        /// The argument's name.
        name: String,
        /// `rows`, `columns` or `elements`.
        axis: &'static str,
        /// The declared size.
        expected: u64,
        /// The size given.
        found: usize,
    },
    /// Two arguments disagree about the size of a symbolic dimension.
    DimMismatch {
        /// The dimension's name.
        dim: String,
        /// The size it was bound to first.
        first_size: usize,
        /// The argument that bound it first.
        first_name: String,
        /// The disagreeing size.
        size: usize,
        /// The disagreeing argument.
        name: String,
    },
    /// A symbolic dimension that no argument determines.
    UnboundDim {
        /// The dimension's name.
        dim: String,
        /// Why, when an argument could have bound it (an empty rank-2 list).
        reason: Option<String>,
    },
    /// An element that is not a number.
    NotANumber {
        /// The argument's name.
        name: String,
        /// Where, e.g. `element 4` or `element [3, 2]`.
        element: String,
        /// What was found (JSON text).
        found: String,
    },
    /// An element of an `int` argument that is not an integer.
    NotAnInteger {
        /// The argument's name.
        name: String,
        /// Where, e.g. `element 4`.
        element: String,
        /// What was found (JSON text).
        found: String,
    },
    /// An element of an `int` argument that is an integer beyond the i64 range.
    IntegerTooLarge {
        /// The argument's name.
        name: String,
        /// Where, e.g. `element 4`.
        element: String,
        /// What was found (JSON text).
        found: String,
    },
    /// A tensor of the wrong element type (Rust API).
    WrongElem {
        /// The argument's name.
        name: String,
        /// The declared element type.
        expected: Elem,
        /// The element type given.
        found: Elem,
    },
    /// A tensor whose element count does not match its shape (Rust API).
    Malformed {
        /// The argument's name.
        name: String,
        /// The shape given.
        shape: Vec<usize>,
        /// The number of elements given.
        len: usize,
    },
    /// A literal index (`w[5]`) outside the rows of what it indexes.
    LiteralIndexOutOfRange {
        /// The literal.
        value: i64,
        /// What it indexes, with the bound and its dimension: `` `w` with 3 elements (V) ``.
        target: String,
    },
    /// A value the function would compute (or an argument) whose shape has more
    /// elements, or a larger dimension, than [`MAX_ELEMENTS`]: a huge literal dimension
    /// (`onehot(l, 100000000000)`, `param w: [100000000000]`) or a product of sizes that
    /// would overflow.
    TooLarge {
        /// What: `` input `x` ``, `` `onehot` of `labels` ``, `a value computed from
        /// `x``...
        what: String,
        /// The shape with its symbolic sizes: `[B, 100000000000] with B = 2`.
        shape: String,
        /// The sizes of the shape.
        sizes: Vec<u64>,
    },
    /// Memory for an argument could not be allocated (a random point at a size the
    /// limits allow but the machine cannot hold).
    CannotAllocate {
        /// The argument's name.
        name: String,
        /// The bytes asked for.
        bytes: u128,
    },
    /// A call with argument slices (Rust API) given the wrong number of them.
    ArgCount {
        /// How many were given.
        given: usize,
        /// The inputs and params, in declaration order.
        expected: Vec<String>,
    },
    /// An argument slice (Rust API) of the wrong length for the call's dimension sizes.
    WrongLength {
        /// The argument's name.
        name: String,
        /// Its element count at these sizes.
        expected: usize,
        /// The length given.
        found: usize,
    },
    /// The wrong number of gradient buffers (Rust API): one per param is expected.
    GradBufferCount {
        /// How many were given.
        given: usize,
        /// The params, in declaration order.
        params: Vec<String>,
    },
    /// A gradient buffer (Rust API) whose length is not its param's element count.
    GradBufferLength {
        /// The param's name.
        name: String,
        /// The param's element count.
        expected: usize,
        /// The buffer's length.
        found: usize,
    },
    /// An index element outside the rows of what it indexes.
    IndexOutOfRange {
        /// The index: `` `labels`[4] `` or `` `i` `` for a scalar.
        index: String,
        /// Its value.
        value: i64,
        /// What it indexes, with the bound and its dimension: `` `E` with 1000 rows (V) ``.
        target: String,
    },
}

/// `s` unless `count` is 1.
fn plural(count: usize) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::NotAnObject { found } => write!(
                f,
                "the data must be a JSON object mapping each input and param to its value, got {found}"
            ),
            CallError::Missing { name } => write!(f, "missing data for `{name}`"),
            CallError::Unexpected { name } => {
                write!(f, "unexpected data `{name}` (not an input or param)")
            }
            CallError::Duplicate { name } => write!(f, "data for `{name}` given twice"),
            CallError::WrongRank {
                name,
                expected,
                found,
            } => write!(f, "`{name}` should have {expected}, got {found}"),
            CallError::Ragged {
                name,
                dim,
                expected,
                row,
                found,
            } => write!(
                f,
                "`{name}` should have {expected} columns ({dim}, as in row 0), row {row} has {found}"
            ),
            CallError::WrongSize {
                name,
                axis,
                expected,
                found,
            } => write!(
                f,
                "`{name}` should have {expected} {axis} (a literal dimension), got {found}"
            ),
            CallError::DimMismatch {
                dim,
                first_size,
                first_name,
                size,
                name,
            } => write!(
                f,
                "dimension `{dim}` is {first_size} from `{first_name}` but {size} from `{name}`"
            ),
            CallError::UnboundDim { dim, reason } => {
                write!(f, "dimension `{dim}` is not determined by the data")?;
                match reason {
                    Some(reason) => write!(f, ": {reason}"),
                    None => write!(f, " (no input or param has it in its type)"),
                }
            }
            CallError::NotANumber {
                name,
                element,
                found,
            } => write!(f, "`{name}` must hold numbers, {element} is {found}"),
            CallError::NotAnInteger {
                name,
                element,
                found,
            } => write!(
                f,
                "`{name}` must hold integers (it is declared int), {element} is {found}"
            ),
            CallError::IntegerTooLarge {
                name,
                element,
                found,
            } => write!(
                f,
                "`{name}` must hold integers that fit in 64 bits (it is declared int), {element} is {found}"
            ),
            CallError::ArgCount { given, expected } => {
                let names: Vec<String> = expected.iter().map(|n| format!("`{n}`")).collect();
                write!(
                    f,
                    "{given} argument{} given, {} expected (the inputs and params in declaration order: {})",
                    plural(*given),
                    expected.len(),
                    names.join(", ")
                )
            }
            CallError::WrongLength {
                name,
                expected,
                found,
            } => write!(f, "`{name}` should have {expected} elements, got {found}"),
            CallError::GradBufferCount { given, params } => {
                let which = if params.is_empty() {
                    "the model has no params".to_string()
                } else {
                    let names: Vec<String> = params.iter().map(|p| format!("`{p}`")).collect();
                    format!("one per param: {}", names.join(", "))
                };
                write!(
                    f,
                    "{given} gradient buffer{} given, {} expected ({which})",
                    plural(*given),
                    params.len()
                )
            }
            CallError::GradBufferLength {
                name,
                expected,
                found,
            } => write!(
                f,
                "the gradient buffer of `{name}` has {found} elements, {expected} expected"
            ),
            CallError::WrongElem {
                name,
                expected,
                found,
            } => write!(
                f,
                "`{name}` should hold {} elements, got {}",
                elem_name(*expected),
                elem_name(*found)
            ),
            CallError::Malformed { name, shape, len } => write!(
                f,
                "`{name}` has shape {shape:?} but {len} elements"
            ),
            CallError::LiteralIndexOutOfRange { value, target } => {
                write!(f, "the literal index {value} is out of range for {target}")
            }
            CallError::IndexOutOfRange {
                index,
                value,
                target,
            } => write!(f, "{index} = {value} is out of range for {target}"),
            CallError::CannotAllocate { name, bytes } => {
                write!(f, "cannot allocate {bytes} bytes for `{name}`")
            }
            CallError::TooLarge { what, shape, sizes } => {
                write!(f, "{what} is too large to evaluate: shape {shape} has ")?;
                match sizes.iter().find(|&&size| size > MAX_ELEMENTS as u64) {
                    Some(size) => write!(f, "a dimension of {size}")?,
                    None => {
                        let count = sizes.iter().fold(1u128, |n, &s| n.saturating_mul(s.into()));
                        write!(f, "{count} elements")?
                    }
                }
                write!(f, ", more than the limit of {MAX_ELEMENTS}")
            }
        }
    }
}

impl std::error::Error for CallError {}

fn elem_name(elem: Elem) -> &'static str {
    match elem {
        Elem::Real => "real",
        Elem::Int => "int",
        Elem::Bool => "bool",
    }
}

/// The declared type of an argument as the user wrote it: `rank 2 ([B, D])`.
fn declared(func: &Function, decl: &ArgDecl) -> String {
    let dims: Vec<String> = decl.ty.shape.iter().map(|d| func.dim_name(*d)).collect();
    match decl.ty.rank() {
        0 => "rank 0 (a single number)".to_string(),
        rank => format!("rank {rank} ([{}])", dims.join(", ")),
    }
}

/// The word for axis `axis` of a rank-`rank` shape.
fn axis_word(rank: usize, axis: usize) -> &'static str {
    match (rank, axis) {
        (1, _) => "elements",
        (_, 0) => "rows",
        _ => "columns",
    }
}

/// Where an element sits, from its flat index in a tensor of `shape`.
fn element_position(shape: &[usize], flat: usize) -> String {
    match shape {
        [_, cols] if *cols > 0 => format!("element [{}, {}]", flat / cols, flat % cols),
        [] => "the value".to_string(),
        _ => format!("element {flat}"),
    }
}

/// The sizes of the symbolic dimensions as they get bound, with the argument that
/// bound each one (for the mismatch message).
struct DimBinder<'f> {
    func: &'f Function,
    sizes: Vec<Option<(usize, String)>>,
}

impl<'f> DimBinder<'f> {
    fn new(func: &'f Function) -> Self {
        DimBinder {
            func,
            sizes: vec![None; func.dims.len()],
        }
    }

    /// Records that axis `axis` of argument `decl` has `size` elements.
    fn bind(&mut self, decl: &ArgDecl, axis: usize, size: usize) -> Result<(), CallError> {
        match decl.ty.shape[axis] {
            Dim::Const(n) if n == size as u64 => Ok(()),
            Dim::Const(n) => Err(CallError::WrongSize {
                name: decl.name.clone(),
                axis: axis_word(decl.ty.rank(), axis),
                expected: n,
                found: size,
            }),
            Dim::Sym(v) => {
                let slot = self.sizes.get_mut(v.0 as usize).unwrap_or_else(|| {
                    panic!(
                        "compiler bug: unknown dimension #{} in `{}`",
                        v.0, decl.name
                    )
                });
                match slot {
                    None => {
                        *slot = Some((size, decl.name.clone()));
                        Ok(())
                    }
                    Some((first, _)) if *first == size => Ok(()),
                    Some((first_size, first_name)) => Err(CallError::DimMismatch {
                        dim: self.func.dims[v.0 as usize].clone(),
                        first_size: *first_size,
                        first_name: first_name.clone(),
                        size,
                        name: decl.name.clone(),
                    }),
                }
            }
        }
    }

    /// The size of a dimension if it is known.
    fn size(&self, dim: Dim) -> Option<usize> {
        match dim {
            Dim::Const(n) => usize::try_from(n).ok(),
            Dim::Sym(v) => self.sizes[v.0 as usize].as_ref().map(|(s, _)| *s),
        }
    }

    /// Every size, or the first dimension nothing bound. `unknown_columns` lists the
    /// (empty rank-2) arguments whose columns could have bound a dimension.
    fn finish(self, unknown_columns: &[(Dim, String)]) -> Result<Vec<usize>, CallError> {
        let mut dims = Vec::with_capacity(self.sizes.len());
        for (k, slot) in self.sizes.iter().enumerate() {
            match slot {
                Some((size, _)) => dims.push(*size),
                None => {
                    let reason = unknown_columns
                        .iter()
                        .find(|(d, _)| *d == Dim::Sym(crate::ir::DimVar(k as u32)))
                        .map(|(_, name)| {
                            format!("`{name}` is empty ([]), so its number of columns is unknown")
                        });
                    return Err(CallError::UnboundDim {
                        dim: self.func.dims[k].clone(),
                        reason,
                    });
                }
            }
        }
        Ok(dims)
    }
}

/// Binds a `DATA.json` object to the arguments of `func` and checks every index. A
/// number is taken as the f64 it parsed to: `0.99999999999999999` given for an `int` is
/// read as 1 ([`bind_data`], which has the text, refuses it).
pub fn bind_json(func: &Function, data: &Json) -> Result<Bound, CallError> {
    bind_parsed(func, data, None)
}

/// Binds `DATA.json` as read from a file ([`DataFile`]) to the arguments of `func` and
/// checks every index. A number given for an `int` must be an integer as written:
/// `2` and `2.0` are, but `0.99999999999999999` and `1e-400` are not, although they
/// parse to the integral f64s 1 and 0.
pub fn bind_data(func: &Function, data: &DataFile) -> Result<Bound, CallError> {
    bind_parsed(func, &data.value, Some(&data.text))
}

/// [`bind_json`], with the text `data` was parsed from when there is one.
fn bind_parsed(func: &Function, data: &Json, text: Option<&str>) -> Result<Bound, CallError> {
    let Json::Object(object) = data else {
        return Err(CallError::NotAnObject {
            found: describe_json(data),
        });
    };
    for decl in &func.args {
        if !object.contains_key(&decl.name) {
            return Err(CallError::Missing {
                name: decl.name.clone(),
            });
        }
    }
    let declared: std::collections::HashSet<&str> =
        func.args.iter().map(|decl| decl.name.as_str()).collect();
    for name in object.keys() {
        if !declared.contains(name.as_str()) {
            return Err(CallError::Unexpected { name: name.clone() });
        }
    }

    let mut literals = text.map(Literals::new);
    let mut binder = DimBinder::new(func);
    let mut parsed = Vec::with_capacity(func.args.len());
    let mut unknown_columns = Vec::new();
    for decl in &func.args {
        let value = &object[&decl.name];
        let (shape, elements) = split_json(func, decl, value)?;
        for (axis, size) in shape.iter().enumerate() {
            if let Some(size) = size {
                binder.bind(decl, axis, *size)?;
            } else {
                unknown_columns.push((decl.ty.shape[axis], decl.name.clone()));
            }
        }
        let data = json_elements(decl, &shape, &elements, literals.as_mut())?;
        parsed.push((shape, data));
    }

    // Empty rank-2 lists take their column count from the dimension's binding.
    let mut args = Vec::with_capacity(parsed.len());
    for (decl, (shape, data)) in func.args.iter().zip(parsed) {
        let mut sizes = Vec::with_capacity(shape.len());
        for (axis, size) in shape.iter().enumerate() {
            match size.or_else(|| binder.size(decl.ty.shape[axis])) {
                Some(size) => sizes.push(size),
                None => break,
            }
        }
        args.push(Tensor { shape: sizes, data });
    }
    let dims = binder.finish(&unknown_columns)?;
    check_sizes(func, &dims)?;
    let bound = Bound { dims, args };
    check_indices(func, &bound)?;
    Ok(bound)
}

/// Why `DATA.json` text was refused by [`parse_json`].
#[derive(Clone, Debug, PartialEq)]
pub enum JsonError {
    /// Not JSON: `serde_json`'s message, with its position in the text.
    Syntax(String),
    /// A name given twice in the top-level object (JSON allows it, but which value was
    /// meant is anyone's guess).
    Duplicate {
        /// The name.
        name: String,
        /// The 1-based line of its second appearance.
        line: usize,
        /// The column where the name ends there.
        column: usize,
    },
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Syntax(message) => write!(f, "not valid JSON: {message}"),
            JsonError::Duplicate { name, line, column } => write!(
                f,
                "`{name}` is given twice (again at line {line} column {column})"
            ),
        }
    }
}

impl std::error::Error for JsonError {}

/// Parses `DATA.json` text: JSON whose top-level object names each thing once. A number
/// too large for an f64 (`1e400`, as `f64::from_str` and Python's `json` read it) is
/// accepted as an infinity, which the data format writes as the string `"Infinity"`
/// (`"-Infinity"`): `serde_json` refuses such numbers, so after it fails they are
/// rewritten as those strings and the text is parsed again (text without them parses in
/// one pass). Positions in errors are positions in `text`.
pub fn parse_json(text: &str) -> Result<Json, JsonError> {
    parse_rewriting(text).map(|(value, _)| value)
}

/// [`parse_json`], and the text with infinities as strings if it was rewritten.
fn parse_rewriting(text: &str) -> Result<(Json, Option<String>), JsonError> {
    let first = match parse_unique_keys(text) {
        Ok(value) => return Ok((value, None)),
        Err(e) => e,
    };
    let Some((rewritten, replacements)) = infinities_as_strings(text) else {
        return Err(json_error(first, 0));
    };
    match parse_unique_keys(&rewritten) {
        Ok(value) => Ok((value, Some(rewritten))),
        Err(e) => {
            // Back to the columns of `text`: the replacements earlier on the error's line
            // made it longer.
            let shift: usize = replacements
                .iter()
                .filter(|r| r.line == e.line() && r.column < e.column())
                .map(|r| r.added)
                .sum();
            Err(json_error(e, shift))
        }
    }
}

/// `DATA.json` as read from a file: the parsed object and the text it was parsed from,
/// which [`bind_data`] reads to tell whether a number given for an `int` is an integer
/// as written.
#[derive(Clone, Debug)]
pub struct DataFile {
    value: Json,
    /// The text `value` was parsed from, as written (a number too large for an f64 is
    /// a string in `value`, see [`parse_json`], but a number here).
    text: String,
}

impl DataFile {
    /// Parses `DATA.json` text as [`parse_json`] does, keeping the text.
    pub fn parse(text: String) -> Result<DataFile, JsonError> {
        let (value, _) = parse_rewriting(&text)?;
        Ok(DataFile { value, text })
    }

    /// The parsed JSON.
    pub fn value(&self) -> &Json {
        &self.value
    }
}

/// The literal text of the elements of the data's arguments, found in the data's text
/// when first asked for (only a number for an `int` written with a fraction or an
/// exponent needs it).
struct Literals<'t> {
    text: &'t str,
    /// Each top-level name's value as written; `None` until first needed.
    values: Option<std::collections::HashMap<String, &'t serde_json::value::RawValue>>,
    /// The scalars of an argument's value as written, in row-major order.
    scalars: std::collections::HashMap<String, Vec<&'t str>>,
}

impl<'t> Literals<'t> {
    fn new(text: &'t str) -> Self {
        Literals {
            text,
            values: None,
            scalars: std::collections::HashMap::new(),
        }
    }

    /// Element `flat` of argument `name` as written, if the text has it.
    fn literal(&mut self, name: &str, flat: usize) -> Option<&'t str> {
        if !self.scalars.contains_key(name) {
            let text = self.text;
            let values = self
                .values
                .get_or_insert_with(|| serde_json::from_str(text).unwrap_or_default());
            let scalars = values
                .get(name)
                .map_or_else(Vec::new, |v| scalar_literals(v.get()));
            self.scalars.insert(name.to_string(), scalars);
        }
        self.scalars.get(name)?.get(flat).copied()
    }
}

/// The scalars (numbers, strings, `true`, `false`, `null`) of a JSON value's text, in
/// the order written, which for a list of rows is row-major.
fn scalar_literals(json: &str) -> Vec<&str> {
    let bytes = json.as_bytes();
    let mut scalars = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        match bytes[i] {
            b'[' | b']' | b'{' | b'}' | b',' | b':' | b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            _ => {
                while i < bytes.len()
                    && !matches!(bytes[i], b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
                {
                    i += 1;
                }
            }
        }
        scalars.push(json.get(start..i.min(bytes.len())).unwrap_or(""));
    }
    scalars
}

/// A JSON number literal as an integer, exactly, from its digits: `None` if it is no
/// integer as written (some digit that the exponent leaves after the point is not 0:
/// `2.5`, `0.99999999999999999`), `Some(None)` if it is one beyond the i64 range, else
/// the integer (`2.50e1` is 25, `9007199254740993.0` is 2^53 + 1, which no f64 holds).
fn decimal_integer(literal: &str) -> Option<Option<i64>> {
    let (negative, unsigned) = match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal),
    };
    let (mantissa, exponent) = unsigned.split_once(['e', 'E']).unwrap_or((unsigned, "0"));
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let (exponent_negative, exponent_digits) = match exponent.as_bytes().first() {
        Some(b'-') => (true, &exponent[1..]),
        Some(b'+') => (false, &exponent[1..]),
        _ => (false, exponent),
    };
    // Saturates: an exponent beyond the i64 range moves the point past any digit.
    let magnitude = exponent_digits.bytes().fold(0i64, |e, d| {
        e.saturating_mul(10)
            .saturating_add(i64::from(d.wrapping_sub(b'0')))
    });
    let exponent = if exponent_negative {
        -magnitude
    } else {
        magnitude
    };
    // Digits at positions from `point` on (counting from the first) are after the point.
    let point = (whole.len() as i64).saturating_add(exponent);
    let digits = || whole.bytes().chain(fraction.bytes());
    if !digits()
        .enumerate()
        .all(|(k, d)| (k as i64) < point || d == b'0')
    {
        return None;
    }
    // The digits before the point, then zeros up to it; past 2^63 it is out of range
    // (and stays so), which also ends the loop over an exponent of a billion zeros.
    let limit = 1i128 << 63;
    let mut value: i128 = 0;
    let mut count = 0i64;
    for d in digits().take(usize::try_from(point).unwrap_or(0)) {
        value = value * 10 + i128::from(d.wrapping_sub(b'0'));
        count += 1;
        if value > limit {
            return Some(None);
        }
    }
    for _ in count..point {
        if value == 0 {
            break;
        }
        value *= 10;
        if value > limit {
            return Some(None);
        }
    }
    let signed = if negative { -value } else { value };
    Some(i64::try_from(signed).ok())
}

/// A value for a message: at most 40 characters of it (a data file may hold a number
/// of millions of digits).
fn shown(text: String) -> String {
    match text.char_indices().nth(40) {
        None => text,
        Some((cut, _)) => format!("{}... ({} characters)", &text[..cut], text.chars().count()),
    }
}

/// A `serde_json` error as a [`JsonError`], its column moved `shift` bytes left.
fn json_error(e: serde_json::Error, shift: usize) -> JsonError {
    let message = e.to_string();
    let what = match message.rsplit_once(" at line ") {
        Some((what, _)) if e.line() > 0 => what.to_string(),
        _ => return JsonError::Syntax(message),
    };
    let (line, column) = (e.line(), e.column().saturating_sub(shift));
    match what.strip_prefix(DUPLICATE) {
        Some(name) if e.classify() == serde_json::error::Category::Data => JsonError::Duplicate {
            name: name.to_string(),
            line,
            column,
        },
        _ => JsonError::Syntax(format!("{what} at line {line} column {column}")),
    }
}

/// How [`TopLevelVisitor`] tells a name given twice, before the name.
const DUPLICATE: &str = "duplicate name: ";

/// `text` as JSON, refusing a key given twice in the top-level object.
fn parse_unique_keys(text: &str) -> Result<Json, serde_json::Error> {
    match serde_json::from_str(text)? {
        TopLevel::Object(map) => Ok(Json::Object(map)),
        // Not an object: the binder says so; parse it plainly to show what it is.
        TopLevel::Other => serde_json::from_str(text),
    }
}

/// A JSON document's top level: an object with unique keys, or something else.
enum TopLevel {
    Object(Map<String, Json>),
    Other,
}

impl<'de> serde::Deserialize<'de> for TopLevel {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TopLevelVisitor)
    }
}

struct TopLevelVisitor;

impl<'de> serde::de::Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut entries: A) -> Result<TopLevel, A::Error> {
        let mut map = Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("{DUPLICATE}{key}")));
            }
            let value = entries.next_value::<Json>()?;
            map.insert(key, value);
        }
        Ok(TopLevel::Object(map))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<TopLevel, A::Error> {
        while items.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(TopLevel::Other)
    }

    fn visit_bool<E>(self, _: bool) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_str<E>(self, _: &str) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }

    fn visit_unit<E>(self) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }
}

/// Where [`infinities_as_strings`] replaced a number: the line (1-based) and the column
/// (bytes before it on its line) in the rewritten text, and the bytes it added.
struct Replacement {
    line: usize,
    column: usize,
    added: usize,
}

/// `text` with every number literal outside strings that overflows an f64 replaced by
/// `"Infinity"` or `"-Infinity"`, and where; `None` if there is none.
fn infinities_as_strings(text: &str) -> Option<(String, Vec<Replacement>)> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
    let mut replacements = Vec::new();
    let (mut line, mut line_start) = (1usize, 0usize);
    let (mut copied, mut i) = (0usize, 0usize);
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                b'\n' => (line, line_start) = (line + 1, out.len() + (i + 1 - copied)),
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'\n' => (line, line_start) = (line + 1, out.len() + (i + 1 - copied)),
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                let literal = &text[start..i];
                if let Ok(x) = literal.parse::<f64>() {
                    if x.is_infinite() {
                        out.push_str(&text[copied..start]);
                        let replacement = if x > 0.0 {
                            "\"Infinity\""
                        } else {
                            "\"-Infinity\""
                        };
                        replacements.push(Replacement {
                            line,
                            column: out.len() - line_start,
                            added: replacement.len().saturating_sub(literal.len()),
                        });
                        out.push_str(replacement);
                        copied = i;
                    }
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if replacements.is_empty() {
        return None;
    }
    out.push_str(&text[copied..]);
    Some((out, replacements))
}

/// What a JSON value is, for messages: `a number`, `a list of rows`...
fn describe_json(value: &Json) -> String {
    match value {
        Json::Null => "null".into(),
        Json::Bool(_) => "a boolean".into(),
        Json::Number(_) => "a number".into(),
        Json::String(s) if is_non_finite_name(s) => "a number".into(),
        Json::String(_) => "a string".into(),
        Json::Object(_) => "an object".into(),
        Json::Array(items) if items.is_empty() => "an empty list".into(),
        Json::Array(items) => {
            if items
                .iter()
                .all(|item| !item.is_array() && !item.is_object())
            {
                "a list of numbers".into()
            } else if items.iter().all(Json::is_array) {
                if items
                    .iter()
                    .any(|row| row.as_array().is_some_and(|r| r.iter().any(Json::is_array)))
                {
                    "a list of lists of lists".into()
                } else {
                    "a list of rows".into()
                }
            } else {
                "a list mixing numbers and lists".into()
            }
        }
    }
}

fn is_non_finite_name(s: &str) -> bool {
    matches!(s, "NaN" | "Infinity" | "-Infinity")
}

/// Checks the nesting of `value` against the declared rank and flattens it: the sizes
/// (`None` for the columns of an empty rank-2 list) and the elements in row-major order.
fn split_json<'v>(
    func: &Function,
    decl: &ArgDecl,
    value: &'v Json,
) -> Result<(Vec<Option<usize>>, Vec<&'v Json>), CallError> {
    let wrong_rank = || CallError::WrongRank {
        name: decl.name.clone(),
        expected: declared(func, decl),
        found: describe_json(value),
    };
    let is_leaf = |v: &Json| !v.is_array() && !v.is_object();
    match decl.ty.rank() {
        0 if is_leaf(value) => Ok((Vec::new(), vec![value])),
        1 => match value {
            Json::Array(items) if items.iter().all(is_leaf) => {
                Ok((vec![Some(items.len())], items.iter().collect()))
            }
            _ => Err(wrong_rank()),
        },
        2 => {
            let Json::Array(rows) = value else {
                return Err(wrong_rank());
            };
            let mut elements = Vec::new();
            let mut n_cols = None;
            for (r, row) in rows.iter().enumerate() {
                let Json::Array(row) = row else {
                    return Err(wrong_rank());
                };
                if !row.iter().all(is_leaf) {
                    return Err(wrong_rank());
                }
                match n_cols {
                    None => n_cols = Some(row.len()),
                    Some(n) if n == row.len() => {}
                    Some(n) => {
                        return Err(CallError::Ragged {
                            name: decl.name.clone(),
                            dim: func.dim_name(decl.ty.shape[1]),
                            expected: n,
                            row: r,
                            found: row.len(),
                        })
                    }
                }
                elements.extend(row.iter());
            }
            Ok((vec![Some(rows.len()), n_cols], elements))
        }
        _ => Err(wrong_rank()),
    }
}

/// Converts flattened JSON elements to the declared element type. With `literals`, a
/// number for an `int` written with a fraction or an exponent must be integral as
/// written, not only as the f64 it parsed to.
fn json_elements(
    decl: &ArgDecl,
    shape: &[Option<usize>],
    elements: &[&Json],
    mut literals: Option<&mut Literals>,
) -> Result<TensorData, CallError> {
    let sizes: Vec<usize> = shape.iter().map(|s| s.unwrap_or(0)).collect();
    let position = |flat: usize| element_position(&sizes, flat);
    match decl.ty.elem {
        Elem::Real => {
            let mut out = Vec::with_capacity(elements.len());
            for (flat, element) in elements.iter().enumerate() {
                let x = match element {
                    Json::Number(n) => n.as_f64(),
                    Json::String(s) => match s.as_str() {
                        "NaN" => Some(f64::NAN),
                        "Infinity" => Some(f64::INFINITY),
                        "-Infinity" => Some(f64::NEG_INFINITY),
                        _ => None,
                    },
                    _ => None,
                };
                out.push(x.ok_or_else(|| CallError::NotANumber {
                    name: decl.name.clone(),
                    element: position(flat),
                    found: shown(element.to_string()),
                })?);
            }
            Ok(TensorData::Real(out))
        }
        Elem::Int => {
            let mut out = Vec::with_capacity(elements.len());
            for (flat, element) in elements.iter().enumerate() {
                let (n, written) = match element {
                    // Written with a fraction or an exponent: the f64 may have rounded
                    // a non-integer to an integer, or an integer past 2^53 to another;
                    // the digits as written decide.
                    Json::Number(n) if n.is_f64() => {
                        match literals.as_mut().and_then(|l| l.literal(&decl.name, flat)) {
                            Some(text) => match decimal_integer(text) {
                                Some(Some(i)) => (Ok(i), None),
                                integral => (Err(integral.is_some()), Some(text.to_string())),
                            },
                            None => (json_integer(n), None),
                        }
                    }
                    Json::Number(n) => (json_integer(n), None),
                    // `"Infinity"` in the value but a number in the text: the number was
                    // too large for an f64.
                    Json::String(_) => {
                        match literals.as_mut().and_then(|l| l.literal(&decl.name, flat)) {
                            Some(text)
                                if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) =>
                            {
                                (Err(decimal_integer(text).is_some()), Some(text.to_string()))
                            }
                            _ => (Err(false), None),
                        }
                    }
                    _ => (Err(false), None),
                };
                out.push(n.map_err(|integral| {
                    let found = shown(written.unwrap_or_else(|| element.to_string()));
                    let (name, element) = (decl.name.clone(), position(flat));
                    if integral {
                        CallError::IntegerTooLarge {
                            name,
                            element,
                            found,
                        }
                    } else {
                        CallError::NotAnInteger {
                            name,
                            element,
                            found,
                        }
                    }
                })?);
            }
            Ok(TensorData::Int(out))
        }
        Elem::Bool => panic!(
            "compiler bug: argument `{}` has a bool (mask) type",
            decl.name
        ),
    }
}

/// A JSON number as an i64, if it is integral (`2` or `2.0`) and in range; otherwise
/// whether it is integral (too large) or not.
fn json_integer(n: &Number) -> Result<i64, bool> {
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    if n.is_u64() {
        return Err(true);
    }
    let Some(x) = n.as_f64() else {
        return Err(false);
    };
    // 2^63 is exactly representable; every integral f64 in (-2^63, 2^63) fits an i64.
    // -2^63 itself fits too, but an integer written without a fraction that fits is read
    // as an i64 above: reaching here as -2^63, it was written below it
    // (`-9223372036854775809` rounds to -2^63), or as `-9223372036854775808.0`, which is
    // refused with it rather than let a smaller integer pass as i64::MIN.
    let limit = 9_223_372_036_854_775_808.0;
    if x.fract() != 0.0 || !x.is_finite() {
        return Err(false);
    }
    if x > -limit && x < limit {
        Ok(x as i64)
    } else {
        Err(true)
    }
}

/// Binds named tensors (the Rust API) to the arguments of `func`, with the same
/// validation as [`bind_json`], and checks every index.
pub fn bind_tensors(func: &Function, named: Vec<(String, Tensor)>) -> Result<Bound, CallError> {
    // Sets, so that a model with thousands of params binds in linear time.
    let mut given = std::collections::HashSet::with_capacity(named.len());
    for (name, _) in &named {
        if !given.insert(name.as_str()) {
            return Err(CallError::Duplicate { name: name.clone() });
        }
    }
    for decl in &func.args {
        if !given.contains(decl.name.as_str()) {
            return Err(CallError::Missing {
                name: decl.name.clone(),
            });
        }
    }
    let position: std::collections::HashMap<&str, usize> = func
        .args
        .iter()
        .enumerate()
        .map(|(k, decl)| (decl.name.as_str(), k))
        .collect();
    for (name, _) in &named {
        if !position.contains_key(name.as_str()) {
            return Err(CallError::Unexpected { name: name.clone() });
        }
    }
    let mut slots: Vec<Option<Tensor>> = vec![None; func.args.len()];
    for (name, tensor) in named {
        if let Some(&k) = position.get(name.as_str()) {
            slots[k] = Some(tensor);
        }
    }
    let mut binder = DimBinder::new(func);
    let mut args = Vec::with_capacity(slots.len());
    for (decl, slot) in func.args.iter().zip(slots) {
        let tensor = slot.unwrap_or_else(|| panic!("compiler bug: `{}` not bound", decl.name));
        check_tensor(func, decl, &tensor, &mut binder)?;
        args.push(tensor);
    }
    let dims = binder.finish(&[])?;
    check_sizes(func, &dims)?;
    let bound = Bound { dims, args };
    check_indices(func, &bound)?;
    Ok(bound)
}

/// Checks one argument's tensor against its declaration (element count, rank, element
/// type) and binds the sizes of its dimensions.
fn check_tensor(
    func: &Function,
    decl: &ArgDecl,
    tensor: &Tensor,
    binder: &mut DimBinder<'_>,
) -> Result<(), CallError> {
    let (elem, len) = (tensor.elem(), tensor.data.len());
    let expected = tensor
        .shape
        .iter()
        .try_fold(1usize, |n, &size| n.checked_mul(size));
    if expected != Some(len) {
        return Err(CallError::Malformed {
            name: decl.name.clone(),
            shape: tensor.shape.clone(),
            len,
        });
    }
    if tensor.shape.len() != decl.ty.rank() {
        return Err(CallError::WrongRank {
            name: decl.name.clone(),
            expected: declared(func, decl),
            found: format!("shape {:?}", tensor.shape),
        });
    }
    if elem != decl.ty.elem {
        return Err(CallError::WrongElem {
            name: decl.name.clone(),
            expected: decl.ty.elem,
            found: elem,
        });
    }
    for (axis, &size) in tensor.shape.iter().enumerate() {
        binder.bind(decl, axis, size)?;
    }
    Ok(())
}

/// Checks a [`Bound`] against `func` as [`bind_tensors`] checks fresh data: a bound
/// made by another model's binder, or changed through its public fields, gets the same
/// errors (naming the argument) before anything evaluates it. `Ok(false)` if every
/// argument fits but the bound's dimension sizes are not the ones its data implies.
pub fn check_bound(func: &Function, bound: &Bound) -> Result<bool, CallError> {
    let mut binder = DimBinder::new(func);
    for (decl, tensor) in func.args.iter().zip(&bound.args) {
        check_tensor(func, decl, tensor, &mut binder)?;
    }
    let dims = binder.finish(&[])?;
    if dims != bound.dims {
        return Ok(false);
    }
    check_sizes(func, &dims)?;
    check_indices(func, bound)?;
    Ok(true)
}

/// Verifies that every argument and every value `func` computes has at most
/// [`MAX_ELEMENTS`] elements and no larger dimension under the dimension sizes `dims`
/// (indexed by `DimVar`), the limit the interpreter and the JIT also enforce: so that no
/// size computed from the shapes overflows and no buffer is too large to allocate. The
/// error names the argument, output or value at fault and its shape.
pub fn check_sizes(func: &Function, dims: &[usize]) -> Result<(), CallError> {
    if let Some(dim) = func.dims.get(dims.len()) {
        return Err(CallError::UnboundDim {
            dim: dim.clone(),
            reason: None,
        });
    }
    let fits = |shape: &[Dim]| checked_numel(shape, dims).is_some();
    for decl in &func.args {
        if !fits(&decl.ty.shape) {
            let role = match decl.role {
                ArgRole::Input => "input",
                ArgRole::Param => "param",
            };
            let what = format!("{role} `{}`", decl.name);
            return Err(too_large(func, dims, what, &decl.ty.shape));
        }
    }
    for (k, inst) in func.insts.iter().enumerate() {
        if !fits(&inst.ty.shape) {
            let what = describe_value(func, Value(k as u32));
            return Err(too_large(func, dims, what, &inst.ty.shape));
        }
    }
    Ok(())
}

fn too_large(func: &Function, dims: &[usize], what: String, shape: &[Dim]) -> CallError {
    let sizes: Vec<u64> = shape
        .iter()
        .map(|&d| match d {
            Dim::Const(n) => n,
            Dim::Sym(v) => dims.get(v.0 as usize).map_or(0, |&n| n as u64),
        })
        .collect();
    let mut text = crate::shape::shape_text(&func.dims, shape);
    let mut bindings: Vec<String> = Vec::new();
    for (&d, size) in shape.iter().zip(&sizes) {
        let binding = format!("{} = {size}", func.dim_name(d));
        if matches!(d, Dim::Sym(_)) && !bindings.contains(&binding) {
            bindings.push(binding);
        }
    }
    if !bindings.is_empty() {
        text = format!("{text} with {}", bindings.join(", "));
    }
    CallError::TooLarge {
        what,
        shape: text,
        sizes,
    }
}

/// A value of `func` for messages: `` input `x` ``, `` output `o` ``, `` `onehot` of
/// `labels` ``, or `` a value computed from `x` and `w` `` (the arguments it depends
/// on).
fn describe_value(func: &Function, v: Value) -> String {
    let arg_name = |v: Value| match func.op(v) {
        Op::Arg(k) => func.args.get(*k as usize).map(|a| a.name.as_str()),
        _ => None,
    };
    if let Op::Arg(k) = func.op(v) {
        if let Some(decl) = func.args.get(*k as usize) {
            let role = match decl.role {
                ArgRole::Input => "input",
                ArgRole::Param => "param",
            };
            return format!("{role} `{}`", decl.name);
        }
    }
    if let Some(r) = func.results.iter().find(|r| r.value == v) {
        match r.role {
            ResultRole::Output => return format!("output `{}`", r.name),
            ResultRole::Grad(_) => return format!("the gradient of `{}`", r.name),
            ResultRole::Loss => {}
        }
    }
    if let Op::OneHot(labels, _) = func.op(v) {
        return match arg_name(*labels) {
            Some(name) => format!("`onehot` of `{name}`"),
            None => "a `onehot` value".to_string(),
        };
    }
    // The arguments `v` depends on, in declaration order.
    let mut needed = vec![false; v.index() + 1];
    needed[v.index()] = true;
    let mut uses = vec![false; func.args.len()];
    for k in (0..=v.index()).rev() {
        if !needed[k] {
            continue;
        }
        let op = &func.insts[k].op;
        if let Op::Arg(a) = op {
            if let Some(slot) = uses.get_mut(*a as usize) {
                *slot = true;
            }
        }
        for operand in op.operands() {
            if let Some(slot) = needed.get_mut(operand.index()) {
                *slot = true;
            }
        }
    }
    let names: Vec<String> = func
        .args
        .iter()
        .zip(&uses)
        .filter(|(_, &used)| used)
        .map(|(a, _)| format!("`{}`", a.name))
        .collect();
    match names.as_slice() {
        [] => "a value".to_string(),
        [one] => format!("a value computed from {one}"),
        [init @ .., last] => format!("a value computed from {} and {last}", init.join(", ")),
    }
}

/// Verifies that every index element of `bound` lies in range for every index operand
/// of `func` (see [`index_checks`]); the error names the index input and the dimension.
pub fn check_indices(func: &Function, bound: &Bound) -> Result<(), CallError> {
    for check in index_checks(func) {
        let limit = match check.bound {
            Dim::Const(n) => n,
            Dim::Sym(v) => bound.dims.get(v.0 as usize).copied().unwrap_or(0) as u64,
        };
        let in_range = |i: i64| u64::try_from(i).is_ok_and(|i| i < limit);
        match func.op(check.index) {
            Op::ConstInt(n) => {
                if !in_range(*n) {
                    return Err(CallError::LiteralIndexOutOfRange {
                        value: *n,
                        target: index_target(func, &check, limit),
                    });
                }
            }
            Op::Arg(k) => {
                let name = &func.args[*k as usize].name;
                let Some(values) = bound.args.get(*k as usize).and_then(Tensor::as_int) else {
                    return Err(CallError::WrongElem {
                        name: name.clone(),
                        expected: Elem::Int,
                        found: bound.args.get(*k as usize).map_or(Elem::Int, Tensor::elem),
                    });
                };
                if let Some(pos) = values.iter().position(|&i| !in_range(i)) {
                    let index = if func.args[*k as usize].ty.rank() == 0 {
                        format!("`{name}`")
                    } else {
                        format!("`{name}`[{pos}]")
                    };
                    return Err(CallError::IndexOutOfRange {
                        index,
                        value: values[pos],
                        target: index_target(func, &check, limit),
                    });
                }
            }
            other => panic!("compiler bug: index operand {other:?} is not an argument"),
        }
    }
    Ok(())
}

/// What an index check guards, for messages: `` `E` with 1000 rows (V) ``.
fn index_target(func: &Function, check: &IndexCheck, limit: u64) -> String {
    IndexTarget::of(func, check).with_limit(limit)
}

/// How the source reads an indexed value built from an argument by indexing and
/// transposing (`E`, `E[0]`, `E.T[k]`), if it is one; `depth` bounds the walk.
fn indexed_text(func: &Function, v: crate::ir::Value, depth: usize) -> Option<String> {
    if depth > 8 {
        return None;
    }
    match func.op(v) {
        Op::Arg(k) => Some(func.args[*k as usize].name.clone()),
        Op::Transpose(x) => Some(format!("{}.T", indexed_text(func, *x, depth + 1)?)),
        Op::Reshape(x, _) => indexed_text(func, *x, depth + 1),
        Op::Gather(t, i) => {
            let index = match func.op(*i) {
                Op::ConstInt(n) => n.to_string(),
                Op::Arg(k) => func.args[*k as usize].name.clone(),
                _ => return None,
            };
            Some(format!("{}[{index}]", indexed_text(func, *t, depth + 1)?))
        }
        _ => None,
    }
}

/// What an index guards, worded once so that the binder and the JIT (which knows the
/// limit only at call time) say it the same way: `` `E` with `` LIMIT `` rows (V)``.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexTarget {
    /// What is indexed, up to the limit: `` `E` with ``.
    what: String,
    /// The unit counted by the limit, singular and plural (`row`/`rows`); `None` for a
    /// bare range `0..LIMIT`.
    unit: Option<(&'static str, &'static str)>,
    /// The dimension of the limit: ` (V)`, or empty for a literal size.
    dim: String,
}

impl IndexTarget {
    /// The target of `check` in `func`.
    pub fn of(func: &Function, check: &IndexCheck) -> IndexTarget {
        let dim = match check.bound {
            Dim::Const(_) => String::new(),
            d => format!(" ({})", func.dim_name(d)),
        };
        let table_name = |t: crate::ir::Value| match indexed_text(func, t, 0) {
            Some(text) => format!("`{text}`"),
            None => "the indexed value".to_string(),
        };
        for inst in &func.insts {
            let (what, unit) = match inst.op {
                Op::Gather(t, i) if i == check.index && func.ty(t).shape[0] == check.bound => {
                    let unit = if func.ty(t).rank() == 2 {
                        ("row", "rows")
                    } else {
                        ("element", "elements")
                    };
                    (format!("{} with ", table_name(t)), unit)
                }
                Op::Pick(x, l) if l == check.index && func.ty(x).shape[1] == check.bound => {
                    ("`pick` from ".to_string(), ("column", "columns"))
                }
                Op::OneHot(l, depth) if l == check.index && depth == check.bound => {
                    ("`onehot` with ".to_string(), ("class", "classes"))
                }
                Op::ScatterAdd(_, i, rows) if i == check.index && rows == check.bound => {
                    ("a gradient scatter into ".to_string(), ("row", "rows"))
                }
                _ => continue,
            };
            return IndexTarget {
                what,
                unit: Some(unit),
                dim,
            };
        }
        IndexTarget {
            what: "0..".to_string(),
            unit: None,
            dim,
        }
    }

    /// The wording with the limit in place: `` `E` with 1 row (V) ``.
    pub fn with_limit(&self, limit: u64) -> String {
        let IndexTarget { what, unit, dim } = self;
        match unit {
            Some((one, many)) => {
                let unit = if limit == 1 { one } else { many };
                format!("{what}{limit} {unit}{dim}")
            }
            None => format!("{what}{limit}{dim}"),
        }
    }
}

/// A tensor as JSON: a number, a list, or a list of rows (nested lists for any rank,
/// row-major); non-finite reals as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`. A
/// tensor whose shape does not match its element count gives its elements as one list.
pub fn tensor_to_json(t: &Tensor) -> Json {
    let elements: Vec<Json> = match &t.data {
        TensorData::Real(v) => v.iter().map(|&x| real_to_json(x)).collect(),
        TensorData::Int(v) => v.iter().map(|&n| Json::from(n)).collect(),
        TensorData::Bool(v) => v.iter().map(|&b| Json::from(b)).collect(),
    };
    let count = t.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if count != Some(elements.len()) {
        // A malformed tensor (its shape does not match its data): the data as it is.
        return Json::Array(elements);
    }
    nest(&mut elements.into_iter(), &t.shape)
}

/// The next elements as nested lists of `shape` (row-major); a scalar for `[]`.
fn nest(elements: &mut impl Iterator<Item = Json>, shape: &[usize]) -> Json {
    match shape.split_first() {
        None => elements.next().unwrap_or(Json::Null),
        Some((&len, inner)) => Json::Array((0..len).map(|_| nest(elements, inner)).collect()),
    }
}

/// A real as JSON: a number, or the name of a non-finite value.
pub fn real_to_json(x: f64) -> Json {
    match Number::from_f64(x) {
        Some(n) => Json::Number(n),
        None if x.is_nan() => Json::from("NaN"),
        None if x > 0.0 => Json::from("Infinity"),
        None => Json::from("-Infinity"),
    }
}

/// JSON text on one line with `": "` and `", "` separators; numbers in their shortest
/// round-tripping form.
pub fn format_json(value: &Json) -> String {
    let mut out = String::new();
    write_json(value, &mut out);
    out
}

fn write_json(value: &Json, out: &mut String) {
    match value {
        Json::Array(items) => {
            out.push('[');
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    out.push_str(", ");
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Json::Object(map) => {
            out.push('{');
            for (k, (key, item)) in map.iter().enumerate() {
                if k > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Json::from(key.as_str()).to_string());
                out.push_str(": ");
                write_json(item, out);
            }
            out.push('}');
        }
        leaf => out.push_str(&leaf.to_string()),
    }
}

/// The object `gradc run` prints: `{"loss": L, "grad": {...}, "outputs": {...}}`, with
/// `grad` omitted when `grads` is `None`, keys in the order given.
pub fn run_output(
    loss: &Tensor,
    grads: Option<Vec<(String, Tensor)>>,
    outputs: Vec<(String, Tensor)>,
) -> String {
    let mut object = Map::new();
    object.insert("loss".into(), tensor_to_json(loss));
    if let Some(grads) = grads {
        let grads = grads
            .iter()
            .map(|(name, t)| (name.clone(), tensor_to_json(t)))
            .collect();
        object.insert("grad".into(), Json::Object(grads));
    }
    let outputs = outputs
        .iter()
        .map(|(name, t)| (name.clone(), tensor_to_json(t)))
        .collect();
    object.insert("outputs".into(), Json::Object(outputs));
    format_json(&Json::Object(object))
}

/// The `run` output from evaluated functions: the loss and outputs from the forward
/// function's results, the gradients (when given) from the gradient function's results.
pub fn results_json(
    forward: &Function,
    forward_values: &[Tensor],
    grad: Option<(&Function, &[Tensor])>,
) -> String {
    let by_role = |func: &Function, values: &[Tensor], want: fn(ResultRole) -> bool| {
        func.results
            .iter()
            .zip(values)
            .filter(|(r, _)| want(r.role))
            .map(|(r, t)| (r.name.clone(), t.clone()))
            .collect::<Vec<_>>()
    };
    let loss = forward
        .results
        .iter()
        .zip(forward_values)
        .find(|(r, _)| r.role == ResultRole::Loss)
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| Tensor::scalar(f64::NAN));
    let grads = grad
        .map(|(func, values)| by_role(func, values, |role| matches!(role, ResultRole::Grad(_))));
    let outputs = by_role(forward, forward_values, |role| role == ResultRole::Output);
    run_output(&loss, grads, outputs)
}

/// A tiny deterministic PRNG (splitmix64): reproducible random points without a
/// dependency.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift: bias below 2^-64 * n, irrelevant here.
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// How [`random_point_with`] draws real values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RealSampling {
    /// Magnitude uniform in `[0.25, 1.25]`, random sign: exercises both signs while
    /// staying away from the kinks of `relu`/`abs` at 0 and keeping `tanh`, `exp`
    /// well-conditioned.
    Signed,
    /// Uniform in `[0.5, 1.5]`: for losses that take `log`, `sqrt` or a fractional
    /// power of their arguments.
    Positive,
}

/// A deterministic random point ([`RealSampling::Signed`]) for `gradcheck` without
/// data: see [`random_point_with`].
///
/// # Panics
/// If a value of the function is too large at that point (see [`try_random_point_with`]).
pub fn random_point(func: &Function, seed: u64) -> Bound {
    random_point_with(func, seed, RealSampling::Signed)
}

/// [`try_random_point_with`] for functions known to be small (tests, benchmarks).
///
/// # Panics
/// If a value of the function is too large at that point (a huge literal dimension).
pub fn random_point_with(func: &Function, seed: u64, sampling: RealSampling) -> Bound {
    try_random_point_with(func, seed, sampling).unwrap_or_else(|e| panic!("{e}"))
}

/// A deterministic random point: each symbolic dimension gets a distinct small size
/// (2, 3, 4, ... in an order drawn from the seed — distinct so that a transposition
/// cannot hide behind a square matrix), reals are drawn as `sampling` says, and each
/// `int` argument is uniform in `0..bound` for the smallest bound of its index checks
/// (`0..4` if it is not an index). A dimension indexed by a literal (`e[5]`) is made
/// large enough for it. The result always passes [`check_indices`] unless a literal
/// dimension of size 0 is indexed. A [`CallError::TooLarge`] if a value of the function
/// would be too large at that point (a huge literal dimension), checked before
/// anything is allocated.
pub fn try_random_point_with(
    func: &Function,
    seed: u64,
    sampling: RealSampling,
) -> Result<Bound, CallError> {
    let mut rng = SplitMix64::new(seed);
    // A seeded Fisher–Yates shuffle of the sizes 2, 3, ... over the dimensions.
    let mut dims: Vec<usize> = (0..func.dims.len()).map(|k| k + 2).collect();
    for k in (1..dims.len()).rev() {
        let j = rng.below(k as u64 + 1) as usize;
        dims.swap(k, j);
    }
    random_args(func, dims, &mut rng, sampling)
}

/// A deterministic random point at the dimension sizes `sizes` (indexed like
/// `func.dims`), drawn as [`random_point_with`] draws its values; a dimension indexed by
/// a literal is still made large enough for it.
///
/// # Panics
/// If a value of the function is too large at that point (see [`try_random_point_at`]).
pub fn random_point_at(
    func: &Function,
    sizes: &[usize],
    seed: u64,
    sampling: RealSampling,
) -> Bound {
    try_random_point_at(func, sizes, seed, sampling).unwrap_or_else(|e| panic!("{e}"))
}

/// [`random_point_at`], with a [`CallError`] instead of a panic when `sizes` has the
/// wrong length or a value of the function would be too large at that point.
pub fn try_random_point_at(
    func: &Function,
    sizes: &[usize],
    seed: u64,
    sampling: RealSampling,
) -> Result<Bound, CallError> {
    random_args(func, sizes.to_vec(), &mut SplitMix64::new(seed), sampling)
}

/// `n` values of `next`, or an error naming argument `name` if their memory cannot be
/// allocated (the size limits allow 16 GiB arrays; a machine may not hold them).
fn filled<T>(name: &str, n: usize, mut next: impl FnMut() -> T) -> Result<Vec<T>, CallError> {
    let mut data = Vec::new();
    data.try_reserve_exact(n)
        .map_err(|_| CallError::CannotAllocate {
            name: name.to_string(),
            bytes: n as u128 * std::mem::size_of::<T>() as u128,
        })?;
    data.extend((0..n).map(|_| next()));
    Ok(data)
}

/// The values of a random point at `dims` (widened for literal indices), after
/// [`check_sizes`].
fn random_args(
    func: &Function,
    mut dims: Vec<usize>,
    rng: &mut SplitMix64,
    sampling: RealSampling,
) -> Result<Bound, CallError> {
    if let Some(dim) = func.dims.get(dims.len()) {
        return Err(CallError::UnboundDim {
            dim: dim.clone(),
            reason: None,
        });
    }
    // A literal index `e[2]` needs its dimension to have more than 2 rows.
    let checks = index_checks(func);
    for check in &checks {
        if let (Op::ConstInt(n), Dim::Sym(v)) = (func.op(check.index), check.bound) {
            let needed = usize::try_from(*n).map_or(0, |n| n.saturating_add(1));
            let size = &mut dims[v.0 as usize];
            *size = (*size).max(needed);
        }
    }
    // Every size below is at most `MAX_ELEMENTS` from here on.
    check_sizes(func, &dims)?;
    let size = |d: Dim| crate::shape::dim_size(d, &dims).unwrap_or(0);
    let mut args = Vec::with_capacity(func.args.len());
    for (k, decl) in func.args.iter().enumerate() {
        let shape: Vec<usize> = decl.ty.shape.iter().map(|&d| size(d)).collect();
        let n = checked_len(shape.iter().copied()).unwrap_or(0);
        let tensor = match decl.ty.elem {
            Elem::Int => {
                let limit = checks
                    .iter()
                    .filter(|c| *func.op(c.index) == Op::Arg(k as u32))
                    .map(|c| size(c.bound))
                    .min()
                    .unwrap_or(4)
                    .max(1);
                let data = filled(&decl.name, n, || rng.below(limit as u64) as i64)?;
                Tensor::int(shape, data)
            }
            _ => {
                let data = filled(&decl.name, n, || match sampling {
                    RealSampling::Signed => {
                        let magnitude = 0.25 + rng.next_f64();
                        if rng.next_u64() & 1 == 0 {
                            magnitude
                        } else {
                            -magnitude
                        }
                    }
                    RealSampling::Positive => 0.5 + rng.next_f64(),
                })?;
                Tensor::real(shape, data)
            }
        };
        args.push(tensor);
    }
    Ok(Bound { dims, args })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_the_machine_cannot_give_is_an_error_naming_the_argument() {
        // More than any address space holds: the reservation fails, it does not abort.
        let err = filled("x", usize::MAX / 4, || 0.0f64).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot allocate {} bytes for `x`",
                (usize::MAX / 4) as u128 * 8
            )
        );
        assert_eq!(filled("x", 3, || 1i64).unwrap(), vec![1, 1, 1]);
    }
}
