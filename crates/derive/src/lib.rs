//! `#[derive(Hyper)]`: an optimizer's hyperparameters declared once.
//!
//! Each field of the struct is one option of the spec string, declared with its name (the field's
//! name), default, allowed range, aliases and doc comment; the derive writes from that one
//! declaration the struct's `Default`, reading the options from a spec (with the checks and the
//! error messages), writing them back (the canonical spec, in field order), checking values set
//! on the struct directly, typed access by name (`get`/`set`, what schedulers cycle), the learning
//! rate, and the transforms the engine applies around the update (maximize, weight decay,
//! cautious). See `taper_optim::Hyper` for the trait and `docs/EXTENDING.md` for an example.
//!
//! ```text
//! #[derive(Debug, Clone, PartialEq, Hyper)]
//! #[hyper(name = "rmsprop", decay = "l2")]
//! pub struct RmsProp {
//!     /// Learning rate `η`.
//!     #[hp(default = 0.01, range = ">= 0")]
//!     pub lr: f64,
//!     /// Smoothing constant `α`.
//!     #[hp(default = 0.99, range = "[0, 1)", alias = "gamma")]
//!     pub alpha: f64,
//!     /// L2 penalty `λ` (the engine adds `λ·p` to the gradient).
//!     #[hp(default = 0.0, range = ">= 0", weight_decay)]
//!     pub weight_decay: f64,
//!     /// Ascend instead of descend (the engine negates the gradient).
//!     #[hp(default = false, maximize)]
//!     pub maximize: bool,
//! }
//! ```
//!
//! Struct attributes (`#[hyper(...)]`): `name = "spec_name"` (required); `decay = "l2" |
//! "decoupled" | "added"` (how a `weight_decay` field applies: PyTorch's L2 penalty added to the
//! gradient, PyTorch's decoupled `p ← p·(1 - η·λ)`, or optax's `add_decayed_weights` added to the
//! update direction; default `l2`); `check = path` (a `fn(&Self) -> taper_optim::Result<()>` for
//! rules across fields); `krate = "path"` (where `taper_optim` is, when it cannot be found).
//!
//! Field attributes (`#[hp(...)]`), by the field's type: `f64` (a number: `default = expr`,
//! `range = ">= 0" | "> 0" | "[a, b)" | "[a, b]" | "(a, b)" | "(a, b]"`, `allowed = "message"`),
//! `Option<f64>` (absent unless given), `bool`, `u64` (a whole number, `min = n`, `below = n`),
//! `Option<u64>`, `&'static str` (a word, `words = ["a", "b"]`), `Vec<f64>` (one number for every
//! parameter group or a bracketed list, one per group), `Vec<u64>` (a bracketed list, `[30,80]`);
//! any other type through `with = "module"` (`module::read(o, key, name)`, `module::write(&v)`:
//! nested schedulers); `skip` for state that is not an option (its `default` expression may use
//! the options read before it). A `default` expression may use the options declared before it
//! (`max_eval = max_iter * 5 / 4`). Any field: `alias = "name"`, `required` (the spec must give it;
//! `default` is then the struct's `Default` only). Roles: `lr` (the learning rate; a field named
//! `lr` is it by default), `weight_decay`, `maximize`, `decoupled` (a `bool` that switches the
//! decay to decoupled), `cautious` (a `bool` that turns on cautious updates), `quiet` (written to
//! the spec only when it differs from its default, so an added option leaves existing specs as
//! they were).

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::quote;
use syn::{parse_macro_input, Data, DeriveInput, Expr, Fields, Ident, LitStr, Type};

/// Derives `taper_optim::Hyper` and `Default` (see the crate documentation).
#[proc_macro_derive(Hyper, attributes(hyper, hp))]
pub fn derive_hyper(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// What kind of option a field is, from its type.
enum Kind {
    Num,
    OptNum,
    Flag,
    Whole,
    OptWhole,
    Word,
    /// `Vec<f64>`: one number for every parameter group, or a bracketed list, one per group.
    Nums,
    /// `Vec<u64>`: a bracketed list of whole numbers (`milestones=[30,80]`).
    List,
    /// Not an option: state the type keeps, set to its `default` (or `Default::default()`).
    Skip,
    /// Any type, read and written by a module of the caller's (`#[hp(with = "path")]`:
    /// `path::read(o, key, name) -> Result<T>`, `path::write(&T) -> String`).
    With,
}

/// How a range of numbers is written and checked.
struct Range {
    check: Tokens,
    text: String,
    interval: bool,
}

#[derive(Default)]
struct FieldAttrs {
    default: Option<Expr>,
    range: Option<String>,
    allowed: Option<String>,
    aliases: Vec<String>,
    required: bool,
    min: Option<Expr>,
    below: Option<Expr>,
    words: Vec<LitStr>,
    lr: bool,
    weight_decay: bool,
    maximize: bool,
    decoupled: bool,
    cautious: bool,
    quiet: bool,
    skip: bool,
    with: Option<syn::Path>,
}

struct Field {
    ident: Ident,
    key: String,
    ty: Type,
    kind: Kind,
    attrs: FieldAttrs,
    doc: String,
}

#[derive(Default)]
struct StructAttrs {
    name: Option<String>,
    decay: Option<String>,
    check: Option<syn::Path>,
    krate: Option<syn::Path>,
}

fn err<T>(span: impl quote::ToTokens, msg: &str) -> syn::Result<T> {
    Err(syn::Error::new_spanned(span, msg))
}

fn kind_of(ty: &Type) -> syn::Result<Kind> {
    let text = quote!(#ty).to_string().replace(' ', "");
    Ok(match text.as_str() {
        "f64" => Kind::Num,
        "Option<f64>" => Kind::OptNum,
        "bool" => Kind::Flag,
        "u64" => Kind::Whole,
        "Option<u64>" => Kind::OptWhole,
        "&'staticstr" => Kind::Word,
        "Vec<f64>" => Kind::Nums,
        "Vec<u64>" => Kind::List,
        _ => {
            return err(
                ty,
                "a hyperparameter is f64, Option<f64>, bool, u64, Option<u64>, &'static str, Vec<f64> or Vec<u64> \
                 (or marked `skip`)",
            )
        }
    })
}

fn doc_of(attrs: &[syn::Attribute]) -> String {
    let mut lines = Vec::new();
    for a in attrs {
        if !a.path().is_ident("doc") {
            continue;
        }
        if let syn::Meta::NameValue(nv) = &a.meta {
            if let Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) = &nv.value {
                lines.push(s.value().trim().to_string());
            }
        }
    }
    lines.join(" ").trim().to_string()
}

fn parse_range(span: &impl quote::ToTokens, text: &str) -> syn::Result<Range> {
    let t = text.trim();
    let num = |s: &str| -> syn::Result<f64> {
        s.trim().parse::<f64>().or_else(|_| err(span, &format!("`{s}` is not a number in range `{text}`")))
    };
    for (op, tokens) in [(">=", quote!(>=)), ("<=", quote!(<=)), (">", quote!(>)), ("<", quote!(<))] {
        if let Some(rest) = t.strip_prefix(op) {
            let a = num(rest)?;
            return Ok(Range {
                check: quote!(x #tokens #a),
                text: format!("{op} {}", rest.trim()),
                interval: false,
            });
        }
    }
    let (lo_closed, hi_closed) = match (t.chars().next(), t.chars().last()) {
        (Some('['), Some(']')) => (true, true),
        (Some('['), Some(')')) => (true, false),
        (Some('('), Some(']')) => (false, true),
        (Some('('), Some(')')) => (false, false),
        _ => return err(span, "a range is `>= a`, `> a`, `<= a`, `< a` or an interval such as `[0, 1)`"),
    };
    let inner = &t[1..t.len() - 1];
    let Some((lo, hi)) = inner.split_once(',') else { return err(span, "an interval is `[a, b)`") };
    let (a, b) = (num(lo)?, num(hi)?);
    let lo_check = if lo_closed { quote!(x >= #a) } else { quote!(x > #a) };
    let hi_check = if hi_closed { quote!(x <= #b) } else { quote!(x < #b) };
    Ok(Range {
        check: quote!(#lo_check && #hi_check),
        text: format!("{}{}, {}{}", &t[..1], lo.trim(), hi.trim(), &t[t.len() - 1..]),
        interval: true,
    })
}

fn parse_field_attrs(f: &syn::Field) -> syn::Result<FieldAttrs> {
    let mut out = FieldAttrs::default();
    for a in &f.attrs {
        if !a.path().is_ident("hp") {
            continue;
        }
        a.parse_nested_meta(|m| {
            let id = m.path.get_ident().map(|i| i.to_string()).unwrap_or_default();
            match id.as_str() {
                "default" => out.default = Some(m.value()?.parse()?),
                "range" => out.range = Some(m.value()?.parse::<LitStr>()?.value()),
                "allowed" => out.allowed = Some(m.value()?.parse::<LitStr>()?.value()),
                "alias" => out.aliases.push(m.value()?.parse::<LitStr>()?.value()),
                "min" => out.min = Some(m.value()?.parse()?),
                "below" => out.below = Some(m.value()?.parse()?),
                "words" => {
                    let list: syn::ExprArray = m.value()?.parse()?;
                    for e in list.elems {
                        match e {
                            Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => out.words.push(s),
                            other => return err(other, "words are string literals"),
                        }
                    }
                }
                "required" => out.required = true,
                "lr" => out.lr = true,
                "weight_decay" => out.weight_decay = true,
                "maximize" => out.maximize = true,
                "decoupled" => out.decoupled = true,
                "cautious" => out.cautious = true,
                "quiet" => out.quiet = true,
                "skip" => out.skip = true,
                "with" => out.with = Some(m.value()?.parse::<LitStr>()?.parse()?),
                _ => return Err(m.error("unknown hp attribute")),
            }
            Ok(())
        })?;
    }
    Ok(out)
}

fn parse_struct_attrs(input: &DeriveInput) -> syn::Result<StructAttrs> {
    let mut out = StructAttrs::default();
    for a in &input.attrs {
        if !a.path().is_ident("hyper") {
            continue;
        }
        a.parse_nested_meta(|m| {
            let id = m.path.get_ident().map(|i| i.to_string()).unwrap_or_default();
            match id.as_str() {
                "name" => out.name = Some(m.value()?.parse::<LitStr>()?.value()),
                "decay" => out.decay = Some(m.value()?.parse::<LitStr>()?.value()),
                "check" => out.check = Some(m.value()?.parse()?),
                "krate" => out.krate = Some(m.value()?.parse::<LitStr>()?.parse()?),
                _ => return Err(m.error("unknown hyper attribute")),
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// How the deriving crate reaches `taper_optim`: itself, directly, or as `taper::optim`.
fn krate() -> Tokens {
    use proc_macro_crate::{crate_name, FoundCrate};
    let ident = |n: &str| Ident::new(n, Span::call_site());
    match crate_name("taper-optim") {
        Ok(FoundCrate::Itself) => quote!(::taper_optim),
        Ok(FoundCrate::Name(n)) => {
            let id = ident(&n);
            quote!(::#id)
        }
        Err(_) => match crate_name("taper") {
            Ok(FoundCrate::Itself) => quote!(::taper::optim),
            Ok(FoundCrate::Name(n)) => {
                let id = ident(&n);
                quote!(::#id::optim)
            }
            Err(_) => quote!(::taper_optim),
        },
    }
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let sattrs = parse_struct_attrs(input)?;
    let k = match &sattrs.krate {
        Some(p) => quote!(#p),
        None => krate(),
    };
    let Some(name) = sattrs.name.clone() else {
        return err(&input.ident, "#[hyper(name = \"...\")] names the optimizer in specs");
    };
    let Data::Struct(data) = &input.data else { return err(&input.ident, "Hyper derives on structs") };
    let Fields::Named(named) = &data.fields else { return err(&input.ident, "Hyper needs named fields") };
    let mut fields = Vec::new();
    for f in &named.named {
        let ident = f.ident.clone().ok_or_else(|| syn::Error::new_spanned(f, "named field"))?;
        let mut key = ident.to_string();
        if let Some(stripped) = key.strip_prefix("r#") {
            key = stripped.to_string();
        }
        let mut attrs = parse_field_attrs(f)?;
        if key == "lr" {
            attrs.lr = true;
        }
        let kind = if attrs.skip {
            Kind::Skip
        } else if attrs.with.is_some() {
            Kind::With
        } else {
            kind_of(&f.ty)?
        };
        if attrs.default.is_none()
            && !matches!(kind, Kind::OptNum | Kind::OptWhole | Kind::Skip | Kind::With)
            && !attrs.required
        {
            return err(f, "every hyperparameter has a `default` (with `required`, for `Default` only)");
        }
        fields.push(Field { ident, key, ty: f.ty.clone(), kind, attrs, doc: doc_of(&f.attrs) });
    }
    let ty = &input.ident;
    let (impl_g, ty_g, where_g) = input.generics.split_for_impl();

    let mut defaults = Vec::new();
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    let mut validates = Vec::new();
    let mut gets = Vec::new();
    let mut sets = Vec::new();
    let mut infos = Vec::new();
    let idents: Vec<&Ident> = fields.iter().map(|f| &f.ident).collect();
    for f in &fields {
        let (id, key) = (&f.ident, &f.key);
        let aliases = &f.attrs.aliases;
        let default = f.attrs.default.clone();
        let default_text = default.as_ref().map(|d| quote!(#d).to_string()).unwrap_or_else(|| "none".into());
        let range = match &f.attrs.range {
            Some(r) => Some(parse_range(&f.ident, r)?),
            None => None,
        };
        let keys_text = match aliases.first() {
            Some(a) => format!("{key} (alias {a})"),
            None => key.clone(),
        };
        let allowed = match (&f.attrs.allowed, &range) {
            (Some(a), _) => a.clone(),
            (None, Some(r)) if r.interval => format!("{keys_text} must be in {}", r.text),
            (None, Some(r)) => format!("{key} must be {}", r.text),
            (None, None) => String::new(),
        };
        let check = match &range {
            Some(r) => r.check.clone(),
            None => quote!(true),
        };
        let quiet_skip = if f.attrs.quiet {
            quote!(if self.#id == <Self as ::core::default::Default>::default().#id { None } else)
        } else {
            quote!()
        };
        let min = f.attrs.min.clone().unwrap_or_else(|| syn::parse_quote!(0));
        let whole_allowed = match (&f.attrs.allowed, &f.attrs.below) {
            (Some(a), _) => a.clone(),
            (None, Some(b)) => format!("{key} must be a whole number below {}", quote!(#b)),
            (None, None) => format!("{key} must be a whole number >= {}", quote!(#min)),
        };
        let info_allowed = match f.kind {
            Kind::Flag => "true or false".to_string(),
            Kind::Whole | Kind::OptWhole | Kind::List => whole_allowed.clone(),
            Kind::Word => f.attrs.words.iter().map(|w| w.value()).collect::<Vec<_>>().join(", "),
            _ => allowed.clone(),
        };
        let doc = &f.doc;
        let required = f.attrs.required;
        if !matches!(f.kind, Kind::Skip) {
            infos.push(quote! {
                #k::OptionInfo {
                    key: #key,
                    aliases: &[#(#aliases),*],
                    default: #default_text,
                    allowed: #info_allowed,
                    required: #required,
                    doc: #doc,
                }
            });
        }
        let invalid = |value: Tokens, allowed: &str| {
            quote!(#k::Error::InvalidValue {
                optimizer: #name,
                key: #key.to_string(),
                value: #value,
                allowed: #allowed.to_string(),
            })
        };
        let below = f.attrs.below.clone().unwrap_or_else(|| syn::parse_quote!(9.0e15));
        let whole_check = quote!(x.fract() == 0.0 && x >= (#min) as f64 && x < (#below) as f64);
        match f.kind {
            Kind::Num => {
                let d = default.clone().unwrap_or_else(|| syn::parse_quote!(0.0));
                defaults.push(quote!(let #id: f64 = (#d) as f64;));
                let fresh = if f.attrs.required {
                    quote!(o.required(#key, |x: f64| #check, #allowed)?)
                } else {
                    quote!(o.num(#key, &[#(#aliases),*], (#d) as f64, |x: f64| #check, #allowed)?)
                };
                reads.push(quote! {
                    let #id: f64 = match base {
                        Some(b) => o.num(#key, &[#(#aliases),*], b.#id, |x: f64| #check, #allowed)?,
                        None => #fresh,
                    };
                });
                writes.push(quote!(#quiet_skip { Some((#key, #k::Value::Num(self.#id).to_string())) }));
                let e = invalid(quote!(#k::Value::Num(x).to_string()), &allowed);
                validates.push(quote! {
                    let x = self.#id;
                    if !(x.is_finite() && (#check)) {
                        return Err(#e);
                    }
                });
                gets.push(quote!(#key #(| #aliases)* => Some(self.#id),));
                sets.push(quote!(#key #(| #aliases)* => next.#id = value,));
            }
            Kind::OptNum => {
                defaults.push(match &default {
                    Some(d) => quote!(let #id: Option<f64> = #d;),
                    None => quote!(let #id: Option<f64> = None;),
                });
                let fresh = match &default {
                    Some(d) => quote!(#d),
                    None => quote!(None),
                };
                reads.push(quote! {
                    let #id: Option<f64> = match o.opt_num(#key, &[#(#aliases),*], |x: f64| #check, #allowed)? {
                        Some(given) => given,
                        None => match base {
                            Some(b) => b.#id,
                            None => #fresh,
                        },
                    };
                });
                // `none` is written only where it is not the default (the default is then a number).
                writes.push(match &default {
                    Some(_) => quote!(Some((#key, self.#id.map_or_else(|| "none".to_string(), |x| #k::Value::Num(x).to_string())))),
                    None => quote!(self.#id.map(|x| (#key, #k::Value::Num(x).to_string()))),
                });
                let e = invalid(quote!(#k::Value::Num(x).to_string()), &allowed);
                validates.push(quote! {
                    if let Some(x) = self.#id {
                        if !(x.is_finite() && (#check)) {
                            return Err(#e);
                        }
                    }
                });
                gets.push(quote!(#key #(| #aliases)* => self.#id,));
                sets.push(quote!(#key #(| #aliases)* => next.#id = Some(value),));
            }
            Kind::Flag => {
                let d = default.clone().unwrap_or_else(|| syn::parse_quote!(false));
                defaults.push(quote!(let #id: bool = #d;));
                reads.push(quote!(let #id: bool = o.flag(#key, base.map_or(#d, |b| b.#id))?;));
                writes.push(quote!(#quiet_skip { Some((#key, self.#id.to_string())) }));
            }
            Kind::Whole => {
                let d = default.clone().unwrap_or_else(|| syn::parse_quote!(0));
                defaults.push(quote!(let #id: u64 = (#d) as u64;));
                let fresh = if f.attrs.required {
                    quote!(o.required(#key, |x: f64| #whole_check, #whole_allowed)?)
                } else {
                    quote!(o.num(#key, &[#(#aliases),*], (#d) as u64 as f64, |x: f64| #whole_check, #whole_allowed)?)
                };
                reads.push(quote! {
                    let #id: u64 = match base {
                        Some(b) => o.num(#key, &[#(#aliases),*], b.#id as f64, |x: f64| #whole_check, #whole_allowed)?,
                        None => #fresh,
                    } as u64;
                });
                writes.push(quote!(#quiet_skip { Some((#key, self.#id.to_string())) }));
                let e = invalid(quote!(self.#id.to_string()), &whole_allowed);
                validates.push(quote! {
                    let x = self.#id as f64;
                    if !(#whole_check) {
                        return Err(#e);
                    }
                });
                gets.push(quote!(#key #(| #aliases)* => Some(self.#id as f64),));
                let e = invalid(quote!(#k::Value::Num(value).to_string()), &whole_allowed);
                sets.push(quote! {
                    #key #(| #aliases)* => {
                        let x = value;
                        if !(#whole_check) {
                            return Err(#e);
                        }
                        next.#id = value as u64
                    }
                });
            }
            Kind::OptWhole => {
                defaults.push(quote!(let #id: Option<u64> = None;));
                reads.push(quote! {
                    let #id: Option<u64> = {
                        let x = o.num(#key, &[#(#aliases),*], f64::NAN, |x: f64| #whole_check, #whole_allowed)?;
                        if x.is_nan() { base.and_then(|b| b.#id) } else { Some(x as u64) }
                    };
                });
                writes.push(quote!(self.#id.map(|x| (#key, x.to_string()))));
                let e = invalid(quote!(x.to_string()), &whole_allowed);
                validates.push(quote! {
                    if let Some(n) = self.#id {
                        let x = n as f64;
                        if !(#whole_check) {
                            let x = n;
                            return Err(#e);
                        }
                    }
                });
            }
            Kind::Word => {
                let d = default.clone().unwrap_or_else(|| syn::parse_quote!(""));
                let words = &f.attrs.words;
                if words.is_empty() {
                    return err(&f.ident, "a word option lists its `words`");
                }
                defaults.push(quote!(let #id: &'static str = #d;));
                reads.push(quote!(let #id: &'static str = o.word(#key, base.map_or(#d, |b| b.#id), &[#(#words),*])?;));
                writes.push(quote!(#quiet_skip { Some((#key, self.#id.to_string())) }));
                let allowed_words = format!(
                    "expected one of {}",
                    words.iter().map(|w| w.value()).collect::<Vec<_>>().join(", ")
                );
                let e = invalid(quote!(self.#id.to_string()), &allowed_words);
                validates.push(quote! {
                    if ![#(#words),*].contains(&self.#id) {
                        return Err(#e);
                    }
                });
            }
            Kind::Nums => {
                let fallback = match (&default, f.attrs.required) {
                    (Some(d), false) => quote!(Some((#d) as f64)),
                    _ => quote!(None),
                };
                defaults.push(match &default {
                    Some(d) => quote!(let #id: Vec<f64> = vec![(#d) as f64];),
                    None => quote!(let #id: Vec<f64> = Vec::new();),
                });
                reads.push(quote! {
                    let #id: Vec<f64> = match base {
                        Some(b) if !o.has(#key) => b.#id.clone(),
                        _ => o.nums(#key, #fallback, |x: f64| #check, #allowed)?,
                    };
                });
                writes.push(quote!(Some((#key, #k::schedule::nums(&self.#id)))));
                let e = invalid(quote!(#k::Value::Num(x).to_string()), &allowed);
                validates.push(quote! {
                    for &x in &self.#id {
                        if !(x.is_finite() && (#check)) {
                            return Err(#e);
                        }
                    }
                });
            }
            Kind::List => {
                let missing = match &default {
                    Some(d) => quote!(#d),
                    None => {
                        let e = invalid(
                            quote!("(missing)".to_string()),
                            &format!("`{key}` is required: {whole_allowed}"),
                        );
                        quote!(return Err(#e))
                    }
                };
                defaults.push(match &default {
                    Some(d) => quote!(let #id: Vec<u64> = #d;),
                    None => quote!(let #id: Vec<u64> = Vec::new();),
                });
                let e = invalid(quote!(t.clone()), &whole_allowed);
                reads.push(quote! {
                    let #id: Vec<u64> = match o.list(#key)? {
                        Some(items) => items
                            .iter()
                            .map(|t| match t.parse::<f64>() {
                                Ok(x) if #whole_check => Ok(x as u64),
                                _ => Err(#e),
                            })
                            .collect::<#k::Result<Vec<u64>>>()?,
                        None => match base {
                            Some(b) => b.#id.clone(),
                            None => #missing,
                        },
                    };
                });
                writes.push(quote! {
                    Some((#key, format!("[{}]", self.#id.iter().map(|m| m.to_string()).collect::<Vec<_>>().join(","))))
                });
            }
            Kind::With => {
                let fty = &f.ty;
                let path = f.attrs.with.clone().ok_or_else(|| syn::Error::new_spanned(&f.ident, "with"))?;
                defaults.push(quote!(let #id: #fty = ::core::default::Default::default();));
                reads.push(quote!(let #id: #fty = #path::read(o, #key, #name)?;));
                writes.push(quote!(Some((#key, #path::write(&self.#id)))));
            }
            Kind::Skip => {
                let fty = &f.ty;
                let d = match &default {
                    Some(d) => quote!(#d),
                    None => quote!(::core::default::Default::default()),
                };
                defaults.push(quote!(let #id: #fty = #d;));
                reads.push(quote!(let #id: #fty = #d;));
            }
        }
    }
    let lr_field = fields.iter().find(|f| f.attrs.lr).map(|f| &f.ident);
    let wd = fields.iter().find(|f| f.attrs.weight_decay).map(|f| &f.ident);
    let maximize = match fields.iter().find(|f| f.attrs.maximize) {
        Some(f) => {
            let id = &f.ident;
            quote!(self.#id)
        }
        None => quote!(false),
    };
    let cautious = match fields.iter().find(|f| f.attrs.cautious) {
        Some(f) => {
            let id = &f.ident;
            quote!(self.#id)
        }
        None => quote!(false),
    };
    // An optimizer (it has a learning rate) also gets the learning rate and the transforms.
    let optim_impl = match lr_field {
        None => quote!(),
        Some(lr) => {
            let mode = match sattrs.decay.as_deref() {
                None | Some("l2") => quote!(#k::Decay::L2(lambda)),
                Some("decoupled") => quote!(#k::Decay::Decoupled(1.0 - self.#lr * lambda)),
                Some("added") => quote!(#k::Decay::Added(lambda)),
                Some(_) => return err(&input.ident, "decay is \"l2\", \"decoupled\" or \"added\""),
            };
            let decay = match wd {
                Some(wd) => {
                    let chosen = match fields.iter().find(|f| f.attrs.decoupled) {
                        Some(f) => {
                            let flag = &f.ident;
                            quote!(if self.#flag { #k::Decay::Decoupled(1.0 - self.#lr * lambda) } else { #mode })
                        }
                        None => mode,
                    };
                    quote! {{
                        let lambda = self.#wd;
                        if lambda == 0.0 { #k::Decay::None } else { #chosen }
                    }}
                }
                None => quote!(#k::Decay::None),
            };
            quote! {
                impl #impl_g #k::OptimHyper for #ty #ty_g #where_g {
                    fn lr(&self) -> f64 {
                        self.#lr
                    }

                    fn set_lr(&mut self, lr: f64) {
                        self.#lr = lr;
                    }

                    fn transforms(&self) -> #k::Transforms {
                        #k::Transforms { maximize: #maximize, decay: #decay, cautious: #cautious }
                    }
                }
            }
        }
    };
    let check_call = match &sattrs.check {
        Some(p) => quote!(#p(self)?;),
        None => quote!(),
    };
    let check_read = match &sattrs.check {
        Some(p) => quote!(#p(&s)?;),
        None => quote!(),
    };
    let set_body = if sets.is_empty() {
        quote! {
            let _ = value;
            Err(#k::Error::InvalidArgument(format!("`{}` has no numeric option `{}`", #name, key)))
        }
    } else {
        quote! {
            let mut next = ::core::clone::Clone::clone(self);
            match key {
                #(#sets)*
                _ => {
                    return Err(#k::Error::InvalidArgument(format!(
                        "`{}` has no numeric option `{}`", #name, key
                    )))
                }
            }
            #k::Hyper::validate(&next)?;
            *self = next;
            Ok(())
        }
    };
    Ok(quote! {
        impl #impl_g ::core::default::Default for #ty #ty_g #where_g {
            #[allow(clippy::unnecessary_cast, clippy::identity_op)]
            fn default() -> Self {
                #(#defaults)*
                Self { #(#idents),* }
            }
        }

        #[allow(clippy::manual_range_contains)]
        impl #impl_g #k::Hyper for #ty #ty_g #where_g {
            const NAME: &'static str = #name;

            #[allow(clippy::unnecessary_cast, clippy::identity_op, clippy::redundant_closure_call)]
            fn read_from(o: &mut #k::Options, base: Option<&Self>) -> #k::Result<Self> {
                let _ = base;
                #(#reads)*
                let s = Self { #(#idents),* };
                #check_read
                Ok(s)
            }

            fn write(&self) -> ::std::vec::Vec<(&'static str, ::std::string::String)> {
                let items: ::std::vec::Vec<Option<(&'static str, ::std::string::String)>> = vec![#(#writes),*];
                items.into_iter().flatten().collect()
            }

            #[allow(clippy::unnecessary_cast)]
            fn validate(&self) -> #k::Result<()> {
                #(#validates)*
                #check_call
                Ok(())
            }

            fn get(&self, key: &str) -> Option<f64> {
                match key {
                    #(#gets)*
                    _ => None,
                }
            }

            fn set(&mut self, key: &str, value: f64) -> #k::Result<()> {
                #set_body
            }

            fn options_info() -> &'static [#k::OptionInfo] {
                &[#(#infos),*]
            }
        }

        #optim_impl
    })
}
