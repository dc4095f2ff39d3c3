//! `gateway read`: an ad-hoc read of one device, like mbpoll.

use std::time::Duration;

use gateway_core::HumanDuration;
use gateway_core::decode::{decode_bit, decode_registers};
use gateway_core::model::{Area, DataType, Point, Quality, Value, WordOrder};

use crate::output::{bad_reason_name, value_text};
use crate::south::{self, Data};

/// Register area names accepted on the command line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum AreaArg {
    Coil,
    Discrete,
    Holding,
    Input,
}

impl From<AreaArg> for Area {
    fn from(a: AreaArg) -> Self {
        match a {
            AreaArg::Coil => Area::Coil,
            AreaArg::Discrete => Area::Discrete,
            AreaArg::Holding => Area::Holding,
            AreaArg::Input => Area::Input,
        }
    }
}

/// Value types accepted by `--type`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum TypeArg {
    Bool,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    String,
}

/// Word orders accepted by `--order`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum OrderArg {
    Abcd,
    Cdab,
    Badc,
    Dcba,
}

impl From<OrderArg> for WordOrder {
    fn from(o: OrderArg) -> Self {
        match o {
            OrderArg::Abcd => WordOrder::Abcd,
            OrderArg::Cdab => WordOrder::Cdab,
            OrderArg::Badc => WordOrder::Badc,
            OrderArg::Dcba => WordOrder::Dcba,
        }
    }
}

/// Arguments of `gateway read`.
#[derive(Debug, clap::Args)]
pub struct ReadArgs {
    /// `tcp://host:port`, `rtu:///dev/ttyUSB0?baud=9600&parity=even`, `rtu+tcp://host:port`.
    pub url: String,
    /// Modbus unit id (slave address).
    #[arg(long, short)]
    pub unit: u8,
    /// Register area.
    #[arg(long, value_enum, default_value = "holding")]
    pub area: AreaArg,
    /// First protocol (0-based) address.
    #[arg(long, short)]
    pub address: u16,
    /// Registers or bits to read.
    #[arg(long, short, default_value_t = 1)]
    pub count: u16,
    /// Decode the registers as consecutive values of this type.
    #[arg(long = "type", short = 't', value_enum)]
    pub data_type: Option<TypeArg>,
    /// Word/byte order of multi-register values.
    #[arg(long, value_enum, default_value = "ABCD")]
    pub order: OrderArg,
    /// value = raw × scale + offset.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// value = raw × scale + offset.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub offset: f64,
    /// How long to wait for the connection and the answer, e.g. `500ms`.
    #[arg(long, default_value = "1s")]
    pub timeout: HumanDuration,
}

fn data_type(t: TypeArg, count: u16) -> DataType {
    match t {
        TypeArg::Bool => DataType::Bool,
        TypeArg::U16 => DataType::U16,
        TypeArg::I16 => DataType::I16,
        TypeArg::U32 => DataType::U32,
        TypeArg::I32 => DataType::I32,
        TypeArg::U64 => DataType::U64,
        TypeArg::I64 => DataType::I64,
        TypeArg::F32 => DataType::F32,
        TypeArg::F64 => DataType::F64,
        // A string takes every register read.
        TypeArg::String => DataType::String(count.saturating_mul(2)),
    }
}

/// Runs `gateway read`; returns the exit code.
pub async fn read(a: ReadArgs) -> u8 {
    let area = Area::from(a.area);
    let timeout: Duration = a.timeout.get();
    let data = match south::read(&a.url, a.unit, area, a.address, a.count, timeout).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("gateway read: {e}");
            return match e {
                south::AdhocError::Url(_) | south::AdhocError::Count { .. } => super::EXIT_CONFIG,
                _ => super::EXIT_UNAVAILABLE,
            };
        }
    };
    match data {
        Data::Bits(bits) => {
            for (i, b) in bits.iter().enumerate() {
                println!("{area} {:>5}: {}", usize::from(a.address) + i, u8::from(*b));
            }
            if let Some(t) = a.data_type {
                if !matches!(t, TypeArg::Bool) {
                    eprintln!("gateway read: --type applies to registers; bits are printed as 0/1");
                }
                for (i, b) in bits.iter().enumerate() {
                    let p = point(area, a.address, i, DataType::Bool, &a);
                    let (v, _) = decode_bit(&p, *b);
                    if let Some(v) = v {
                        println!(
                            "value {:>5}: {}",
                            usize::from(a.address) + i,
                            value_text(&v, "")
                        );
                    }
                }
            }
        }
        Data::Words(words) => {
            for (i, w) in words.iter().enumerate() {
                println!(
                    "{area} {:>5}: {w:>5}  0x{w:04X}  {:>6}",
                    usize::from(a.address) + i,
                    *w as i16
                );
            }
            if let Some(t) = a.data_type {
                let dt = data_type(t, a.count);
                let width = usize::from(dt.width());
                if words.len() % width != 0 {
                    eprintln!(
                        "gateway read: {} registers do not divide into {dt} values of {width} registers; the remainder is not decoded",
                        words.len()
                    );
                }
                for (k, chunk) in words.chunks_exact(width).enumerate() {
                    let p = point(area, a.address, k * width, dt, &a);
                    let (v, q) = decode_registers(&p, chunk);
                    let text = v
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |v| exact_text(v, dt));
                    match q {
                        Quality::Good => println!("{dt} @{}: {text}", p.address),
                        Quality::Bad(r) => {
                            println!("{dt} @{}: {text} (bad: {})", p.address, bad_reason_name(r))
                        }
                    }
                }
            }
        }
    }
    0
}

fn point(area: Area, start: u16, offset: usize, dt: DataType, a: &ReadArgs) -> Point {
    Point {
        name: "value".into(),
        unit: String::new(),
        area,
        address: start.saturating_add(u16::try_from(offset).unwrap_or(u16::MAX)),
        data_type: dt,
        order: a.order.into(),
        scale: a.scale,
        offset: a.offset,
        min: None,
        max: None,
        alarm: false,
        critical: false,
        deadband: None,
        heartbeat: None,
        write: None,
    }
}

/// Full precision for an ad-hoc read: an f32 prints as the f32 it was
/// (123.456, not 123.45600128173828), everything else as is.
fn exact_text(v: &Value, dt: DataType) -> String {
    match (v, dt) {
        (Value::Float(f), DataType::F32) => format!("{}", *f as f32),
        (Value::Float(f), _) => format!("{f}"),
        (v, _) => value_text(v, ""),
    }
}
