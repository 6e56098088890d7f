"""Order lines with planted product associations (``order_items``), and the associations as truth.

Each generated order (``tables._build_orders``: customer, time, amount, ``items``, ``category``) gets exactly
``items`` lines. A product catalogue holds five products per order category. The first line is a product of
the order's category; each later line is, in order of precedence:

1. the planted partner of the previous line's product (:data:`PLANTED`), with the planted probability;
2. else, with probability :data:`P_FAVOURITE`, one of the customer's own favourite products (so a customer's
   history predicts its next basket);
3. else a product of any category, by catalogue popularity.

So "bought A" raises the chance of B in the same basket far above B's base rate, which is what association
rules and the item-item model must find again. Quantities are 1–3 and unit prices split the order amount
(the lines of an order add up to its ``amount``). Draws come from their own stream of the seed, so the four
contract tables are the same with or without order lines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import coerce_types

#: product catalogue per order category (category names as in ``params._ORDER_CATEGORIES``): (sku, name, price)
CATALOGUE: dict[str, tuple[tuple[str, str, float], ...]] = {
    "食品饮料": (
        ("F01", "咖啡豆", 89.0),
        ("F02", "咖啡滤纸", 15.0),
        ("F03", "绿茶", 60.0),
        ("F04", "矿泉水", 30.0),
        ("F05", "坚果礼盒", 120.0),
    ),
    "美妆个护": (
        ("B01", "洗发水", 59.0),
        ("B02", "护发素", 55.0),
        ("B03", "面霜", 199.0),
        ("B04", "防晒霜", 129.0),
        ("B05", "牙膏", 19.0),
    ),
    "服饰鞋包": (
        ("A01", "跑鞋", 499.0),
        ("A02", "运动袜", 29.0),
        ("A03", "T恤", 99.0),
        ("A04", "牛仔裤", 259.0),
        ("A05", "双肩包", 219.0),
    ),
    "数码电器": (
        ("D01", "手机", 2999.0),
        ("D02", "手机壳", 49.0),
        ("D03", "耳机", 399.0),
        ("D04", "充电宝", 149.0),
        ("D05", "电饭煲", 459.0),
    ),
    "家居家装": (
        ("H01", "床单", 159.0),
        ("H02", "枕头", 89.0),
        ("H03", "台灯", 139.0),
        ("H04", "收纳箱", 69.0),
        ("H05", "毛巾", 39.0),
    ),
    "母婴用品": (
        ("M01", "奶粉", 329.0),
        ("M02", "纸尿裤", 139.0),
        ("M03", "湿巾", 35.0),
        ("M04", "奶瓶", 89.0),
        ("M05", "婴儿洗衣液", 49.0),
    ),
    "运动户外": (
        ("S01", "瑜伽垫", 129.0),
        ("S02", "弹力带", 39.0),
        ("S03", "帐篷", 699.0),
        ("S04", "登山杖", 159.0),
        ("S05", "水壶", 59.0),
    ),
    "图书文具": (
        ("R01", "笔记本", 25.0),
        ("R02", "中性笔", 12.0),
        ("R03", "小说", 45.0),
        ("R04", "绘本", 39.0),
        ("R05", "书签", 9.0),
    ),
    "办公用品": (
        ("O01", "打印纸", 35.0),
        ("O02", "墨盒", 169.0),
        ("O03", "文件夹", 19.0),
        ("O04", "订书机", 29.0),
        ("O05", "白板笔", 15.0),
    ),
    "软件服务": (
        ("V01", "办公软件年卡", 399.0),
        ("V02", "云存储年卡", 199.0),
        ("V03", "杀毒软件", 149.0),
        ("V04", "设计软件月卡", 99.0),
        ("V05", "技术支持服务", 299.0),
    ),
}

#: planted associations: (antecedent sku, consequent sku, P(the consequent is the next line | antecedent on a line
#: that has a next line))
PLANTED: tuple[tuple[str, str, float], ...] = (
    ("M01", "M02", 0.7),  # 奶粉 → 纸尿裤
    ("D01", "D02", 0.7),  # 手机 → 手机壳
    ("F01", "F02", 0.6),  # 咖啡豆 → 咖啡滤纸
    ("A01", "A02", 0.6),  # 跑鞋 → 运动袜
    ("B01", "B02", 0.6),  # 洗发水 → 护发素
    ("O01", "O02", 0.6),  # 打印纸 → 墨盒
    ("S01", "V04", 0.5),  # 瑜伽垫 → 设计软件月卡: across categories
)

#: favourite products per customer, and the chance a later line is one of them (when no planted partner joins)
N_FAVOURITES = 3
P_FAVOURITE = 0.4
#: popularity weight of the products within a category (first = most popular)
_WITHIN = np.array([0.35, 0.1, 0.25, 0.2, 0.1])


def catalogue_frame() -> pd.DataFrame:
    """The catalogue: ``sku, product_name, category, price`` (one row per product)."""
    rows = [(s, n, cat, p) for cat, prods in CATALOGUE.items() for s, n, p in prods]
    return pd.DataFrame(rows, columns=["sku", "product_name", "category", "price"])


def planted_truth() -> pd.DataFrame:
    """The planted associations: ``antecedent, consequent`` (skus), their names and ``p_planted``."""
    cat = catalogue_frame().set_index("sku")["product_name"]
    a, b, p = (list(x) for x in zip(*PLANTED, strict=True))
    return pd.DataFrame(
        {
            "antecedent": a,
            "consequent": b,
            "antecedent_name": cat[a].to_numpy(),
            "consequent_name": cat[b].to_numpy(),
            "p_planted": p,
        }
    )


def build_order_items(orders: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``order_items`` for ``orders`` (every status): ``orders.items`` lines per order, contract dtypes.

    Same ``orders`` and ``seed`` → identical lines.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 20]))
    cat = catalogue_frame()
    n_prod = len(cat)
    code = {s: i for i, s in enumerate(cat["sku"])}
    partner = np.full(n_prod, -1)
    p_partner = np.zeros(n_prod)
    for a, b, p in PLANTED:
        partner[code[a]], p_partner[code[a]] = code[b], p
    cat_names = list(CATALOGUE)
    cat_of_order = pd.Index(cat_names).get_indexer(orders["category"].astype(str))
    cat_of_order = np.where(cat_of_order >= 0, cat_of_order, 0)
    popularity = np.tile(_WITHIN, len(cat_names)) / len(cat_names)
    cust, cust_code = np.unique(orders["customer_id"].astype(str).to_numpy(), return_inverse=True)
    # N_FAVOURITES products per customer, drawn without replacement by popularity (Efraimidis–Spirakis keys)
    keys = rng.random((len(cust), n_prod)) ** (1.0 / popularity)
    favourites = np.argsort(-keys, axis=1, kind="stable")[:, :N_FAVOURITES]
    n = len(orders)
    n_items = np.maximum(pd.to_numeric(orders["items"], errors="coerce").fillna(1).to_numpy(dtype=np.int64), 1)
    width = int(n_items.max()) if n else 1
    basket = np.full((n, width), -1, dtype=np.int64)
    basket[:, 0] = cat_of_order * 5 + rng.choice(5, n, p=_WITHIN)
    for j in range(1, width):  # one vectorised draw per line position
        prev = basket[:, j - 1]
        joins = (partner[prev] >= 0) & (rng.random(n) < p_partner[prev])
        fav = favourites[cust_code, rng.integers(N_FAVOURITES, size=n)]
        other = rng.choice(n_prod, n, p=popularity)
        pick = np.where(joins, partner[prev], np.where(rng.random(n) < P_FAVOURITE, fav, other))
        basket[:, j] = np.where(n_items > j, pick, -1)
    sku_code = basket[basket >= 0]  # row-major: the lines of each order in line order
    order_pos = np.repeat(np.arange(len(orders)), n_items)
    line = np.arange(len(order_pos)) - np.repeat(np.cumsum(n_items) - n_items, n_items) + 1
    qty = rng.integers(1, 4, len(sku_code)).astype(np.float64)
    price = cat["price"].to_numpy()[sku_code]
    # unit prices scaled so the lines add up to the order amount
    weight = price * qty
    total = np.bincount(order_pos, weights=weight, minlength=len(orders))
    amount = pd.to_numeric(orders["amount"], errors="coerce").fillna(0).to_numpy(dtype=np.float64)
    unit = price * (amount[order_pos] / np.where(total > 0, total, 1.0)[order_pos])
    df = pd.DataFrame(
        {
            "order_id": orders["order_id"].astype(str).to_numpy()[order_pos],
            "line": line,
            "sku": cat["sku"].to_numpy()[sku_code],
            "product_name": cat["product_name"].to_numpy()[sku_code],
            "category": cat["category"].to_numpy()[sku_code],
            "quantity": qty,
            "unit_price": np.round(unit, 4),
        }
    )
    return coerce_types(df, "order_items")
