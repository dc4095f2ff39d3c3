//! The column layout: every column of every table, its accepted header
//! names (English and Chinese) and its help text (the `columns` sheet and
//! docs/profiles.md say the same).

/// A column of the point table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Column {
    Name,
    LabelZh,
    LabelEn,
    Area,
    Address,
    Base,
    Type,
    Bit,
    Length,
    Order,
    Scale,
    Offset,
    Unit,
    Min,
    Max,
    Deadband,
    Heartbeat,
    Alarm,
    Critical,
    Writable,
    WriteMin,
    WriteMax,
    Ratio,
    AliasOf,
    Description,
}

/// One column: its canonical header, the other names accepted, and help.
#[derive(Clone, Copy, Debug)]
pub struct ColumnHelp {
    /// The column.
    pub column: Column,
    /// Header written by export (English).
    pub name: &'static str,
    /// Chinese header, also accepted.
    pub name_zh: &'static str,
    /// Further accepted headers (compared in lower case, spaces and `-`
    /// read as `_`).
    pub aliases: &'static [&'static str],
    /// Must every row fill it?
    pub required: &'static str,
    /// What it holds, in English.
    pub help_en: &'static str,
    /// The same in Chinese.
    pub help_zh: &'static str,
}

/// The point table's columns, in the order export writes them.
pub const COLUMNS: &[ColumnHelp] = &[
    ColumnHelp {
        column: Column::Name,
        name: "name",
        name_zh: "名称",
        aliases: &["点名", "标识", "point", "id"],
        required: "yes",
        help_en: "Point identifier: letters, digits and _ (outlet_pressure). Unique in the sheet.",
        help_zh: "点的标识：字母、数字和下划线（outlet_pressure），表内唯一。",
    },
    ColumnHelp {
        column: Column::LabelZh,
        name: "label_zh",
        name_zh: "中文名",
        aliases: &["中文名称", "中文标签"],
        required: "recommended",
        help_en: "What people read, in Chinese (出水压力).",
        help_zh: "显示给人看的中文名称（出水压力）。",
    },
    ColumnHelp {
        column: Column::LabelEn,
        name: "label_en",
        name_zh: "英文名",
        aliases: &["英文名称", "英文标签", "label"],
        required: "recommended",
        help_en: "What people read, in English (Outlet pressure).",
        help_zh: "显示给人看的英文名称（Outlet pressure）。",
    },
    ColumnHelp {
        column: Column::Area,
        name: "area",
        name_zh: "区域",
        aliases: &[
            "寄存器类型",
            "功能码",
            "function",
            "function_code",
            "fc",
            "table",
        ],
        required: "yes, unless address is a reference number",
        help_en: "holding / input / coil / discrete; or the read function code 3 / 4 / 1 / 2; or 4xxxx / 3xxxx / 0xxxx / 1xxxx.",
        help_zh: "holding（保持寄存器）/ input（输入寄存器）/ coil（线圈）/ discrete（离散输入）；或读功能码 3 / 4 / 1 / 2；或 4xxxx / 3xxxx / 0xxxx / 1xxxx。",
    },
    ColumnHelp {
        column: Column::Address,
        name: "address",
        name_zh: "地址",
        aliases: &["寄存器地址", "register", "reg"],
        required: "yes",
        help_en: "Decimal (17) or hex (0x11), counted from 0 or 1 as the base says; or a reference number (40018 = holding, 1-based) that also gives the area.",
        help_zh: "十进制（17）或十六进制（0x11），按“起始”列或 --base 从 0 或 1 数起；或参考编号（40018 = 保持寄存器，从 1 数起），同时给出区域。",
    },
    ColumnHelp {
        column: Column::Base,
        name: "base",
        name_zh: "起始",
        aliases: &["地址基准", "address_base"],
        required: "no (default: --base, else 0)",
        help_en: "0 when address is the protocol address, 1 when the list counts from 1 (register 1 = protocol 0).",
        help_zh: "0：地址即协议地址；1：清单从 1 数起（寄存器 1 = 协议地址 0）。",
    },
    ColumnHelp {
        column: Column::Type,
        name: "type",
        name_zh: "类型",
        aliases: &["数据类型", "data_type", "datatype", "format"],
        required: "yes",
        help_en: "bool, bit, u16, i16, u32, i32, u64, i64, f32, f64, string (also uint16, int32, float, double …).",
        help_zh: "bool、bit、u16、i16、u32、i32、u64、i64、f32、f64、string（也可写 uint16、int32、float、double 等）。",
    },
    ColumnHelp {
        column: Column::Bit,
        name: "bit",
        name_zh: "位",
        aliases: &["位号", "bit_no"],
        required: "for type bit",
        help_en: "Bit number in the register, 0 (least significant) to 15.",
        help_zh: "寄存器中的位号，0（最低位）到 15。",
    },
    ColumnHelp {
        column: Column::Length,
        name: "length",
        name_zh: "长度",
        aliases: &["字节数", "len"],
        required: "for type string",
        help_en: "Length of a string in bytes (two per register).",
        help_zh: "字符串的字节数（每个寄存器两个字节）。",
    },
    ColumnHelp {
        column: Column::Order,
        name: "order",
        name_zh: "字序",
        aliases: &["word_order", "字节序", "byte_order", "endian"],
        required: "no (default: the profile's)",
        help_en: "Word order of a 32/64-bit value: ABCD, CDAB, BADC, DCBA.",
        help_zh: "32/64 位数值的字序：ABCD、CDAB、BADC、DCBA。",
    },
    ColumnHelp {
        column: Column::Scale,
        name: "scale",
        name_zh: "倍率",
        aliases: &["系数", "比例", "factor", "multiplier", "gain"],
        required: "no (default 1)",
        help_en: "Value = raw × scale + offset.",
        help_zh: "数值 = 原始值 × 倍率 + 偏移。",
    },
    ColumnHelp {
        column: Column::Offset,
        name: "offset",
        name_zh: "偏移",
        aliases: &["偏移量"],
        required: "no (default 0)",
        help_en: "Added after scaling.",
        help_zh: "乘以倍率后再加上的值。",
    },
    ColumnHelp {
        column: Column::Unit,
        name: "unit",
        name_zh: "单位",
        aliases: &["units"],
        required: "no",
        help_en: "Engineering unit (bar, Hz, kWh).",
        help_zh: "工程单位（bar、Hz、kWh）。",
    },
    ColumnHelp {
        column: Column::Min,
        name: "min",
        name_zh: "最小值",
        aliases: &["下限", "minimum"],
        required: "no",
        help_en: "Lowest plausible value (after scaling); below it a reading is refused.",
        help_zh: "合理范围下限（换算后），低于此值的读数不采信。",
    },
    ColumnHelp {
        column: Column::Max,
        name: "max",
        name_zh: "最大值",
        aliases: &["上限", "maximum"],
        required: "no",
        help_en: "Highest plausible value (after scaling).",
        help_zh: "合理范围上限（换算后）。",
    },
    ColumnHelp {
        column: Column::Deadband,
        name: "deadband",
        name_zh: "死区",
        aliases: &["变化死区"],
        required: "no",
        help_en: "Report by exception: a number in the unit (0.05) or a percentage (2%).",
        help_zh: "变化上报：单位内的数值（0.05）或百分比（2%）。",
    },
    ColumnHelp {
        column: Column::Heartbeat,
        name: "heartbeat",
        name_zh: "心跳",
        aliases: &["心跳周期"],
        required: "no",
        help_en: "Report by exception: publish at least this often (5m, 30s).",
        help_zh: "变化上报：至少每隔多久上报一次（5m、30s）。",
    },
    ColumnHelp {
        column: Column::Alarm,
        name: "alarm",
        name_zh: "报警",
        aliases: &["告警", "报警点"],
        required: "no (default no)",
        help_en: "yes: an alarm point, polled at the fast alarm interval.",
        help_zh: "是：报警点，按快速报警周期采集。",
    },
    ColumnHelp {
        column: Column::Critical,
        name: "critical",
        name_zh: "严重",
        aliases: &["紧急", "重要报警"],
        required: "no (default no)",
        help_en: "yes: a hard alarm, opens a ticket at once when active.",
        help_zh: "是：严重报警，一旦触发立即开工单。",
    },
    ColumnHelp {
        column: Column::Writable,
        name: "writable",
        name_zh: "可写",
        aliases: &["读写", "rw", "r/w", "access"],
        required: "no (default no)",
        help_en: "yes: the point may be written (setpoint, start/stop coil); the site must also allow writes.",
        help_zh: "是：该点可写（设定值、启停线圈）；现场配置也须允许写入。",
    },
    ColumnHelp {
        column: Column::WriteMin,
        name: "write_min",
        name_zh: "写入下限",
        aliases: &["写下限"],
        required: "no",
        help_en: "Lowest value a write may set, in the unit.",
        help_zh: "写入允许的最小值（工程单位）。",
    },
    ColumnHelp {
        column: Column::WriteMax,
        name: "write_max",
        name_zh: "写入上限",
        aliases: &["写上限"],
        required: "no",
        help_en: "Highest value a write may set, in the unit.",
        help_zh: "写入允许的最大值（工程单位）。",
    },
    ColumnHelp {
        column: Column::Ratio,
        name: "ratio",
        name_zh: "变比",
        aliases: &["互感器", "ct_pt"],
        required: "no",
        help_en: "ct (a current), pt (a voltage) or ct_pt (a power or energy) behind instrument transformers: the device's ct_ratio / pt_ratio scale it.",
        help_zh: "ct（电流）、pt（电压）或 ct_pt（功率、电能）：按设备的电流/电压互感器变比换算。",
    },
    ColumnHelp {
        column: Column::AliasOf,
        name: "alias_of",
        name_zh: "同址点",
        aliases: &["alias"],
        required: "no",
        help_en: "Name of a point whose registers this one deliberately reads too.",
        help_zh: "与本点有意读取相同寄存器的另一点的名称。",
    },
    ColumnHelp {
        column: Column::Description,
        name: "description",
        name_zh: "描述",
        aliases: &["说明", "备注", "remark", "remarks", "comment", "notes"],
        required: "no",
        help_en: "Free text (tooltips, docs).",
        help_zh: "自由文字（提示、文档）。",
    },
];

/// A header as compared: trimmed, lower case, spaces and `-` as `_`.
pub(crate) fn normalise(header: &str) -> String {
    header
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c == ' ' || c == '-' { '_' } else { c })
        .collect()
}

/// The point column a header names, if any.
pub(crate) fn point_column(header: &str) -> Option<Column> {
    let h = normalise(header);
    COLUMNS
        .iter()
        .find(|c| c.name == h || c.name_zh == h || c.aliases.contains(&h.as_str()))
        .map(|c| c.column)
}

/// Headers of the `health` table (fault rules): English, Chinese.
pub(crate) const HEALTH_COLUMNS: &[(&str, &str)] = &[
    ("name", "名称"),
    ("when", "条件"),
    ("for", "持续"),
    ("label_zh", "中文名"),
    ("label_en", "英文名"),
];

/// Headers of the `identify` table.
pub(crate) const IDENTIFY_COLUMNS: &[(&str, &str)] = &[
    ("area", "区域"),
    ("address", "地址"),
    ("base", "起始"),
    ("type", "类型"),
    ("order", "字序"),
    ("equals", "等于"),
    ("label", "型号"),
];

/// Headers of the `profile` table (key, value).
pub(crate) const PROFILE_COLUMNS: &[(&str, &str)] = &[("key", "项"), ("value", "值")];

/// Sheet names: points is whatever sheet is chosen; these by name.
pub(crate) const HEALTH_SHEETS: &[&str] = &["health", "故障规则"];
pub(crate) const IDENTIFY_SHEETS: &[&str] = &["identify", "型号识别"];
pub(crate) const PROFILE_SHEETS: &[&str] = &["profile", "型号"];
/// The help sheet export writes; never read.
pub(crate) const HELP_SHEET: &str = "columns";
