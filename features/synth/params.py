"""Constants, fake vocabularies, process parameters and the seasonal time line of the simulator."""

from __future__ import annotations

from datetime import date

import numpy as np

from features.contract import CHANNELS, EVENT_TYPES, FUNNEL_STAGES

DEFAULT_END = date(2025, 6, 30)
DEFAULT_HORIZON_DAYS = 30
CHURN_LOOKBACK_DAYS = 180
DAY = 86_400
_NEVER = np.int64(-(10**12))  # "no such event yet", far before any data

_EV = {e: i for i, e in enumerate(EVENT_TYPES)}
_CH = {c: i for i, c in enumerate(CHANNELS)}
# funnel stage number (1-based) of each event type that is a funnel stage, 0 otherwise
_STAGE_OF_EVENT = np.array([FUNNEL_STAGES.index(e) + 1 if e in FUNNEL_STAGES else 0 for e in EVENT_TYPES])
_N_EV = len(EVENT_TYPES)
# tally slots: one per event type, then marketing opens and clicks (by their own timestamps)
_K_OPEN = _N_EV
_K_CLICK = _N_EV + 1
_N_KINDS = _N_EV + 2
_WIN7 = 7 * DAY

# ---------------------------------------------------------------------------------------------
# Realistic vocabularies (all values fake; names and places are common real ones)
# ---------------------------------------------------------------------------------------------

# fmt: off

_GEO: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("广东省", 12.0, ("广州市", "深圳市", "东莞市", "佛山市", "珠海市")),
    ("浙江省", 8.0, ("杭州市", "宁波市", "温州市", "绍兴市")),
    ("江苏省", 8.0, ("南京市", "苏州市", "无锡市", "常州市")),
    ("上海市", 6.0, ("上海市",)),
    ("北京市", 6.0, ("北京市",)),
    ("山东省", 6.0, ("济南市", "青岛市", "烟台市")),
    ("四川省", 5.0, ("成都市", "绵阳市")),
    ("河南省", 4.5, ("郑州市", "洛阳市")),
    ("湖北省", 4.5, ("武汉市", "宜昌市")),
    ("福建省", 4.0, ("福州市", "厦门市", "泉州市")),
    ("湖南省", 3.5, ("长沙市", "株洲市")),
    ("安徽省", 3.0, ("合肥市", "芜湖市")),
    ("河北省", 3.0, ("石家庄市", "保定市")),
    ("陕西省", 2.5, ("西安市",)),
    ("重庆市", 2.5, ("重庆市",)),
    ("天津市", 2.0, ("天津市",)),
    ("辽宁省", 2.5, ("沈阳市", "大连市")),
    ("江西省", 2.0, ("南昌市",)),
    ("广西壮族自治区", 2.0, ("南宁市", "桂林市")),
    ("云南省", 1.8, ("昆明市",)),
    ("黑龙江省", 1.5, ("哈尔滨市",)),
    ("吉林省", 1.2, ("长春市",)),
    ("山西省", 1.2, ("太原市",)),
    ("贵州省", 1.2, ("贵阳市",)),
    ("海南省", 0.8, ("海口市", "三亚市")),
    ("内蒙古自治区", 0.8, ("呼和浩特市",)),
    ("新疆维吾尔自治区", 0.7, ("乌鲁木齐市",)),
    ("甘肃省", 0.7, ("兰州市",)),
    ("宁夏回族自治区", 0.3, ("银川市",)),
    ("青海省", 0.2, ("西宁市",)),
    ("西藏自治区", 0.1, ("拉萨市",)),
)
_STREETS = (
    "人民路", "中山路", "解放路", "建设路", "和平路", "文化路", "新华路", "长江路", "黄河路", "东风路",
    "迎宾大道", "科技园路", "滨江大道", "青年路", "胜利路", "光明街", "幸福街", "朝阳路",
)
_SURNAMES: tuple[tuple[str, str, float], ...] = (
    ("王", "Wang", 7.1), ("李", "Li", 7.0), ("张", "Zhang", 6.7), ("刘", "Liu", 5.4), ("陈", "Chen", 4.5),
    ("杨", "Yang", 3.1), ("黄", "Huang", 2.2), ("赵", "Zhao", 2.0), ("吴", "Wu", 1.9), ("周", "Zhou", 1.9),
    ("徐", "Xu", 1.3), ("孙", "Sun", 1.3), ("马", "Ma", 1.1), ("朱", "Zhu", 1.1), ("胡", "Hu", 1.0),
    ("郭", "Guo", 1.0), ("何", "He", 0.9), ("高", "Gao", 0.9), ("林", "Lin", 0.9), ("罗", "Luo", 0.8),
    ("郑", "Zheng", 0.8), ("梁", "Liang", 0.7), ("谢", "Xie", 0.6), ("宋", "Song", 0.5), ("唐", "Tang", 0.5),
    ("许", "Xu", 0.5), ("韩", "Han", 0.5), ("冯", "Feng", 0.4), ("邓", "Deng", 0.4), ("曹", "Cao", 0.4),
    ("彭", "Peng", 0.4), ("曾", "Zeng", 0.4), ("肖", "Xiao", 0.4), ("田", "Tian", 0.4), ("董", "Dong", 0.3),
    ("袁", "Yuan", 0.3), ("潘", "Pan", 0.3), ("蒋", "Jiang", 0.3), ("蔡", "Cai", 0.3), ("叶", "Ye", 0.3),
    ("程", "Cheng", 0.3), ("苏", "Su", 0.3), ("魏", "Wei", 0.3), ("丁", "Ding", 0.3), ("沈", "Shen", 0.3),
    ("欧阳", "Ouyang", 0.05), ("上官", "Shangguan", 0.01),
)
_GIVEN_M: tuple[tuple[str, str], ...] = (
    ("伟", "Wei"), ("强", "Qiang"), ("磊", "Lei"), ("军", "Jun"), ("洋", "Yang"), ("勇", "Yong"),
    ("杰", "Jie"), ("涛", "Tao"), ("明", "Ming"), ("超", "Chao"), ("刚", "Gang"), ("平", "Ping"),
    ("辉", "Hui"), ("鹏", "Peng"), ("浩", "Hao"), ("宇", "Yu"), ("浩然", "Haoran"), ("子轩", "Zixuan"),
    ("俊杰", "Junjie"), ("建华", "Jianhua"), ("建国", "Jianguo"), ("志强", "Zhiqiang"), ("文博", "Wenbo"),
    ("思远", "Siyuan"), ("天宇", "Tianyu"), ("一鸣", "Yiming"),
)
_GIVEN_F: tuple[tuple[str, str], ...] = (
    ("芳", "Fang"), ("娜", "Na"), ("秀英", "Xiuying"), ("敏", "Min"), ("静", "Jing"), ("丽", "Li"),
    ("艳", "Yan"), ("娟", "Juan"), ("霞", "Xia"), ("秀兰", "Xiulan"), ("桂英", "Guiying"), ("婷", "Ting"),
    ("玲", "Ling"), ("欣怡", "Xinyi"), ("子涵", "Zihan"), ("梓涵", "Zihan"), ("雨桐", "Yutong"),
    ("诗涵", "Shihan"), ("佳怡", "Jiayi"), ("晓燕", "Xiaoyan"), ("丽娟", "Lijuan"), ("慧", "Hui"),
    ("颖", "Ying"), ("雪", "Xue"),
)
_ENGLISH_M = ("David", "Michael", "Kevin", "Jason", "Tony", "Eric", "Leo", "Jack")
_ENGLISH_F = ("Emily", "Grace", "Linda", "Cindy", "Amy", "Vivian", "Lily", "Sophia")
_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")  # reserved for documentation: never real
_PHONE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155", "156",
    "157", "158", "159", "166", "173", "177", "180", "181", "182", "185", "186", "187", "188", "189", "199",
)
_INDUSTRIES = (
    "零售", "电商", "制造业", "互联网", "金融", "教育", "医疗健康", "餐饮", "物流", "房地产", "专业服务",
    "政府/事业单位",
)
_JOB_TITLES = (
    "总经理", "采购经理", "市场总监", "运营经理", "销售经理", "工程师", "财务", "行政", "创始人", "学生",
    "自由职业", "其他",
)
# (category, share of orders, log-amount shift)
_ORDER_CATEGORIES: tuple[tuple[str, float, float], ...] = (
    ("食品饮料", 0.20, -0.5), ("美妆个护", 0.14, 0.0), ("服饰鞋包", 0.16, 0.1), ("数码电器", 0.10, 1.0),
    ("家居家装", 0.10, 0.4), ("母婴用品", 0.09, 0.1), ("运动户外", 0.07, 0.2), ("图书文具", 0.06, -0.6),
    ("办公用品", 0.05, 0.0), ("软件服务", 0.03, 1.3),
)

# ---------------------------------------------------------------------------------------------
# Process parameters (log-hazards are per day; rates per 30 days unless named otherwise)
# ---------------------------------------------------------------------------------------------

_SOURCE_P = dict(web=0.22, app=0.20, wechat=0.20, referral=0.08, ad=0.12, event=0.05, phone=0.05,
                 store=0.06, other=0.02)
_SOURCE_EFFECT = dict(web=0.0, app=0.15, wechat=0.1, referral=0.6, ad=-0.35, event=0.25, phone=0.1,
                      store=0.35, other=-0.2)
# channel a customer mostly uses, by source channel
_PRIMARY_CHANNEL = dict(web="web", app="app", wechat="wechat", referral="wechat", ad="web", event="store",
                        phone="phone", store="store", other="other")
_SIZE_P = (0.30, 0.28, 0.20, 0.14, 0.08)
_SIZE_EFFECT = (0.0, 0.1, 0.2, 0.25, 0.15)
_MEMBER_EFFECT = (0.0, 0.15, 0.3, 0.45)
_P_PAID = 0.90  # share of orders that end "paid" (q); the rest cancelled / refunded
_P_CANCELLED = 0.06
_Z_HAZARD = 0.35  # direct (unobserved) effect of the hidden propensity on the purchase hazard

_LEAD_BASE = -6.6
# log-hazard shift by funnel depth 0..9 (1 = visit ... 7 = checkout_page, 8 = order, 9 = pay)
_DEPTH_EFFECT = np.array([0.0, 0.0, 0.4, 0.9, 1.3, 1.8, 2.5, 2.9, 3.0, 3.1])
_CUST_BASE = -5.1
_HAZARD_CAP = 0.12  # orders per day

# engagement events per 30 days for an average, fresh lead / an average recent buyer
_ENGAGE_TYPES = ("visit", "login", "browse", "favorite", "consult", "add_to_cart", "checkout_page",
                 "coupon_claim")
_LEAD_RATES = np.array([0.9, 0.5, 1.0, 0.3, 0.3, 0.25, 0.12, 0.06])
_CUST_RATES = np.array([0.5, 0.7, 0.8, 0.2, 0.12, 0.2, 0.08, 0.12])
# minimum funnel depth needed before a lead shows an event type (0 = always)
_MIN_DEPTH = np.array([0, 2, 3, 4, 5, 6, 7, 0])
_AR_PHI = 0.55  # per-period persistence of the hidden interest shock
_AR_SD = 0.55



# ---------------------------------------------------------------------------------------------
# Time line: seconds since the first data day, with weekly and daily seasonality
# ---------------------------------------------------------------------------------------------


class _Timeline:
    """Seconds since the data start, and a seasonal intensity integrated in 'average days'."""

    _DOW = np.array([0.93, 0.95, 0.97, 0.98, 1.03, 1.12, 1.02])  # Monday .. Sunday
    _HOD = np.array(
        [
            0.15,
            0.08,
            0.05,
            0.04,
            0.05,
            0.12,
            0.35,
            0.7,
            1.0,
            1.2,
            1.35,
            1.4,
            1.45,
            1.3,
            1.25,
            1.3,
            1.35,
            1.4,
            1.5,
            1.7,
            1.9,
            1.9,
            1.5,
            0.75,
        ]
    )

    def __init__(self, start: date, days: int):
        self.start = start
        self.days = days
        self.end_sec = days * DAY
        dow = (start.weekday() + np.arange(days)) % 7
        dow_w = self._DOW / self._DOW.mean()
        hod_w = self._HOD / self._HOD.sum()
        self.w = (dow_w[dow][:, None] * hod_w[None, :]).ravel()  # per hour, in days of average activity
        self.cum = np.concatenate([[0.0], np.cumsum(self.w)])

    def integrate(self, t: np.ndarray | int) -> np.ndarray:
        """Cumulative intensity at second ``t`` (linear within each hour)."""
        t = np.asarray(t, dtype=np.int64)
        h = np.minimum(t // 3600, len(self.w) - 1)
        return self.cum[h] + self.w[h] * (t - h * 3600) / 3600.0

    def place(self, lo: np.ndarray, hi: np.ndarray | int, u: np.ndarray) -> np.ndarray:
        """Draw event times in (lo, hi) following the intensity, from uniforms ``u``; never at midnight."""
        c_lo = self.integrate(lo)
        c_hi = self.integrate(hi)
        c = c_lo + u * (c_hi - c_lo)
        h = np.clip(np.searchsorted(self.cum, c, side="right") - 1, 0, len(self.w) - 1)
        t = np.floor(h * 3600 + (c - self.cum[h]) / self.w[h] * 3600).astype(np.int64)
        t = np.minimum(np.maximum(t, np.asarray(lo) + 1), np.asarray(hi) - 1)
        return _avoid_midnight(t)

    def to_datetime(self, t: np.ndarray) -> np.ndarray:
        """Seconds since start → datetime64[ns]."""
        base = np.datetime64(self.start, "ns")
        return base + np.asarray(t, dtype=np.int64).astype("timedelta64[s]").astype("timedelta64[ns]")


def _avoid_midnight(t: np.ndarray) -> np.ndarray:
    """Shift times that fall exactly on a day boundary by one second, so cut-offs are unambiguous."""
    return t + (t % DAY == 0)

