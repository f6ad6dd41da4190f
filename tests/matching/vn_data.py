"""The Vietnamese facts the synthetic population is drawn from, kept as data apart from the drawing code.

Family-name shares are those issue 16 quotes for the whole population (Nguyễn ~38% ...), with a long tail
sharing what is left; middle and given names are listed most common first and weighted by rank (a Zipf-like
skew: a few names cover much of the population, as "An", "Anh", "Hùng", "Linh", "Hương" do). Wards are names
of Ho Chi Minh City wards and communes (including those of former Bình Dương and Bà Rịa-Vũng Tàu, merged in
2025) with invented 5-digit codes in the city's range. The age pyramid is HCMC's, in 5-year bands.
"""

from __future__ import annotations

# ------------------------------------------------------------------------------------------ family names
# per cent of the population; Hoàng/Huỳnh and Vũ/Võ are one name written the northern or the southern way
FAMILY_SHARES: dict[str, float] = {
    "Nguyễn": 38.0, "Trần": 11.0, "Lê": 9.5, "Phạm": 7.0, "Huỳnh": 2.7, "Hoàng": 2.3, "Phan": 4.5,
    "Võ": 2.2, "Vũ": 1.7, "Đặng": 2.1, "Bùi": 2.0, "Đỗ": 1.4, "Hồ": 1.3, "Ngô": 1.3, "Dương": 1.0, "Lý": 0.5,
}
FAMILY_TAIL = (
    "Trương Đinh Lâm Đoàn Mai Trịnh Lương Cao Tạ Hà Thái Châu Tô Lưu La Quách Tăng Triệu Từ Phùng Diệp Kiều "
    "Lục Mạc Khổng Hứa Kim Âu Đàm Giang Thạch Sơn Danh Tôn Văn Nghiêm Vương Chu Tiêu Ông Thân Lại Hầu Quan"
).split()
# the same family name as the north and the south write it: a facility may record either
REGIONAL_SPELLINGS: dict[str, str] = {"Hoàng": "Huỳnh", "Huỳnh": "Hoàng", "Vũ": "Võ", "Võ": "Vũ"}

# ------------------------------------------------------------------------------------------ middle names
# (name, weight); Văn and Thị dominate among people born before 2000, less so after
MALE_MIDDLE: tuple[tuple[str, float], ...] = (
    ("Văn", 40), ("Minh", 8), ("Hữu", 6), ("Đức", 6), ("Quốc", 5), ("Thanh", 5), ("Hoàng", 4), ("Công", 4),
    ("Tấn", 3), ("Đình", 3), ("Quang", 3), ("Gia", 3), ("Thành", 3), ("Ngọc", 2), ("Xuân", 2), ("Anh", 2),
    ("Trung", 2), ("Duy", 2), ("Chí", 2), ("Bảo", 2), ("Phước", 1), ("Trọng", 1), ("Thế", 1), ("Nhật", 1),
)
FEMALE_MIDDLE: tuple[tuple[str, float], ...] = (
    ("Thị", 45), ("Ngọc", 10), ("Thanh", 6), ("Thu", 5), ("Kim", 4), ("Minh", 4), ("Bảo", 3), ("Mỹ", 3),
    ("Phương", 3), ("Khánh", 3), ("Hồng", 3), ("Thùy", 3), ("Quỳnh", 2), ("Gia", 2), ("Như", 2), ("Hoài", 2),
    ("Diệu", 1), ("Tuyết", 1), ("Bích", 1), ("Cẩm", 1), ("Hải", 1), ("Xuân", 1),
)
MODERN_LESS = ("Văn", "Thị")  # weight divided by 3 for people born in 2000 or later

# ------------------------------------------------------------------------------------------- given names
# most common first; weight of rank r is 1 / (r + 4) ** 0.9
MALE_GIVEN = (
    "Hùng Tuấn Dũng Minh Nam Anh Huy Hải Long Sơn Thành Phúc Khoa Bình Cường Hiếu Trung Quân Đức Hoàng Tùng "
    "Thắng Việt Tài Lâm Khánh Phong Hưng Thịnh Toàn Vinh Quang Đạt Duy Hào Kiên Lộc Nhân Nghĩa Tâm Thái Thanh "
    "Thiện Tín Trí Tú Vũ Bảo Danh Định Đông Giang Hậu Hiển Hòa Hợp Khải Khang Khôi Lực Mạnh Nguyên Nhật Phát "
    "Phương Quốc Quý Sang Tân Thuận Tiến Trọng Trường An Ân Bằng Chiến Chính Công Cảnh Du Dương Đăng Điền "
    "Hiệp Hoan Học Huân Kha Khiêm Kiệt Lợi Luân Lượng Nhựt Ninh Phi Quyết Sĩ Tấn Thạch Thiên Thông Tiền Triết "
    "Trực Tuyên Uy Vỹ Xuân Bách Châu Đại Đạo Hân Hiền Hoài Huỳnh Kỳ Lành Lập Linh Mẫn Nhân Phụng Quyền Sáng "
    "Tâm Thăng Thọ Thơ Toản Trí Tường Vĩnh Vượng Ý Bửu Cẩn Diệu Đoàn Khương Lễ Liêm Lưu Năng Phước Sanh Tuệ"
).split()
FEMALE_GIVEN = (
    "Hương Linh Anh Lan Hoa Mai Trang Thảo Hà Hằng Nga Ngọc Phương Thủy Tuyết Vân Yến Loan Hạnh Hiền Hồng "
    "Huyền Liên Ly My Nhung Oanh Quyên Quỳnh Tâm Thanh Thu Thúy Trâm Trinh Uyên Vy Xuân Dung Diễm Duyên Giang "
    "Hậu Khánh Kiều Lệ Liễu Lụa Mỹ Nguyệt Nhi Như Nhàn Phượng Quế Sương Tiên Thơ Thắm Thoa Trúc Tú Tuyền Vi "
    "Vui Ánh Bích Chi Châu Diệp Đào Hân Hoài Huệ Hường Kim Lam Lài Ngân Phụng Sen Tường Thi Thương Trà Diệu "
    "Điệp Gấm Hải Khuê Mơ Nương Thư Tình An Bảo Cúc Dạ Đan Hiên Hòa Hoàng Kha Lành Lê Lựu Mận Minh Nghi Nhàn "
    "Nhiên Nhu Phúc Quyến Sa Tài Thắng Thiện Thùy Tiền Trân Tươi Uyên Vàng Vẹn Xinh Yên Ái Bình Cầm Diệu Hạ"
).split()

# -------------------------------------------------------------------------------------------------- wards
HCMC_WARDS = (
    "Bến Thành|Sài Gòn|Tân Định|Cầu Ông Lãnh|Bàn Cờ|Xuân Hòa|Nhiêu Lộc|Chợ Quán|An Đông|Chợ Lớn|Bình Tây|"
    "Bình Tiên|Bình Phú|Phú Lâm|Minh Phụng|Hòa Bình|Phú Thọ|Diên Hồng|Vườn Lài|Hòa Hưng|Tân Thuận|Phú Thuận|"
    "Tân Mỹ|Tân Hưng|Chánh Hưng|Phú Định|Bình Đông|Thủ Thiêm|An Khánh|Bình Trưng|Cát Lái|An Phú|Thảo Điền|"
    "Bình Trị Đông|Bình Hưng Hòa|An Lạc|Tân Tạo|Bình Tân|Tân Sơn Nhì|Tây Thạnh|Tân Phú|Phú Thạnh|"
    "Phú Thọ Hòa|Tân Sơn Hòa|Tân Sơn Nhất|Tân Hòa|Bảy Hiền|Tân Bình|Tân Sơn|Phú Nhuận|Đức Nhuận|Cầu Kiệu|"
    "Gia Định|Bình Thạnh|Bình Lợi Trung|Thạnh Mỹ Tây|Bình Quới|Hạnh Thông|An Nhơn|Gò Vấp|An Hội Đông|"
    "Thông Tây Hội|An Hội Tây|Trung Mỹ Tây|Tân Thới Hiệp|Thới An|Đông Hưng Thuận|An Phú Đông|Hiệp Bình|"
    "Thủ Đức|Tam Bình|Linh Xuân|Tăng Nhơn Phú|Long Bình|Long Phước|Long Trường|Phước Long|Bình Thọ|"
    "Hiệp Phú|Phú Hữu|Long Thạnh Mỹ|Linh Trung|Linh Tây|Linh Chiểu|Trường Thọ|Tam Phú|Thạnh Lộc|Thạnh Xuân|"
    "Hiệp Thành|Tân Chánh Hiệp|Chánh Nghĩa|Thủ Dầu Một|Phú Lợi|Bình Dương|Phú An|Chánh Hiệp|Hòa Lợi|"
    "Thới Hòa|Bến Cát|Long Nguyên|Tân Uyên|Tân Hiệp|Tân Khánh|Vĩnh Tân|Bình Cơ|Dĩ An|Đông Hòa|Tân Đông Hiệp|"
    "Thuận An|Thuận Giao|Bình Hòa|Lái Thiêu|An Phú Thuận|Tây Nam|Long Hương|Bà Rịa|Tam Long|Vũng Tàu|"
    "Tam Thắng|Rạch Dừa|Phước Thắng|Phú Mỹ|Tân Thành|Tân Phước|Tân Hải|Bình Lợi|Nhà Bè|Hiệp Phước|An Lợi Đông|"
    "Phước Bình|Tân Phong|Tân Quy|Tân Kiểng|Bình Thuận|Nguyễn Cư Trinh|Cầu Kho|Cô Giang|Đa Kao|Phạm Ngũ Lão|"
    "Võ Thị Sáu|Tân Thới Hòa|Hiệp Tân|Sơn Kỳ|Bình Hưng|Tân Túc|Thạnh An|Long Hòa|Cần Thạnh|An Thới Đông"
).split("|")
HCMC_COMMUNES = (
    "Bình Chánh|Tân Nhựt|Vĩnh Lộc|Hưng Long|Bình Lợi|Củ Chi|Tân An Hội|Thái Mỹ|An Nhơn Tây|Nhuận Đức|"
    "Phú Hòa Đông|Bình Mỹ|Hóc Môn|Bà Điểm|Xuân Thới Sơn|Đông Thạnh|Cần Giờ|Bình Khánh|Long Sơn|Hòa Hội|"
    "Xuyên Mộc|Hồ Tràm|Bình Châu|Hòa Hiệp|Bàu Lâm|Ngãi Giao|Kim Long|Châu Đức|Long Điền|Long Hải|Đất Đỏ|"
    "Phước Hải|Côn Đảo|Dầu Tiếng|Minh Thạnh|Long Hòa|Thanh An|Trừ Văn Thố|Bàu Bàng|Phú Giáo|Phước Hòa|"
    "Phước Thành|An Long|Bắc Tân Uyên|Thường Tân|Tân Thạnh|Lai Uyên|Phạm Văn Cội|Trung An|An Nhơn Đông"
).split("|")

# (5-digit code, name): codes in the city's range, one per unit, in list order
WARDS: tuple[tuple[str, str], ...] = tuple(
    (f"{26734 + 3 * i:05d}", f"Phường {name}") for i, name in enumerate(dict.fromkeys(HCMC_WARDS))
) + tuple((f"{27400 + 3 * i:05d}", f"Xã {name}") for i, name in enumerate(dict.fromkeys(HCMC_COMMUNES)))

# ----------------------------------------------------------------------------------------------- streets
STREETS = (
    "Lê Lợi|Nguyễn Huệ|Hai Bà Trưng|Trần Hưng Đạo|Cách Mạng Tháng Tám|Điện Biên Phủ|Nguyễn Thị Minh Khai|"
    "Võ Văn Tần|Lý Thường Kiệt|Nguyễn Trãi|Lê Văn Sỹ|Phan Đăng Lưu|Nơ Trang Long|Xô Viết Nghệ Tĩnh|Quang Trung|"
    "Nguyễn Oanh|Phan Văn Trị|Lê Đức Thọ|Âu Cơ|Lạc Long Quân|Ba Tháng Hai|Sư Vạn Hạnh|Nguyễn Chí Thanh|"
    "Hồng Bàng|Kinh Dương Vương|Tỉnh Lộ 10|Hương Lộ 2|Tân Kỳ Tân Quý|Lũy Bán Bích|Trường Chinh|Cộng Hòa|"
    "Hoàng Văn Thụ|Phan Xích Long|Nguyễn Văn Trỗi|Võ Văn Ngân|Kha Vạn Cân|Lê Văn Việt|Đỗ Xuân Hợp|"
    "Nguyễn Duy Trinh|Huỳnh Tấn Phát|Nguyễn Văn Linh|Phạm Thế Hiển|Dương Bá Trạc|Nguyễn Ảnh Thủ|Quốc Lộ 22|"
    "Tỉnh Lộ 8|Đại lộ Bình Dương|Yersin|Thích Quảng Đức|Ba Cu|Hoàng Hoa Thám|Đường số 7|Đường số 12"
).split("|")

# -------------------------------------------------------------------------------------------- age pyramid
# (first age of the band, per cent of HCMC's population); the last band is 80-99
AGE_BANDS: tuple[tuple[int, float], ...] = (
    (0, 6.4), (5, 7.0), (10, 6.6), (15, 5.9), (20, 7.4), (25, 9.4), (30, 10.0), (35, 9.0), (40, 8.0),
    (45, 7.0), (50, 6.1), (55, 5.2), (60, 4.4), (65, 3.0), (70, 2.0), (75, 1.3), (80, 1.3),
)

# ------------------------------------------------------------------------------------------------ phones
MOBILE_PREFIXES = (
    "086 096 097 098 032 033 034 035 036 037 038 039 089 090 093 070 076 077 078 079 088 091 094 081 082 "
    "083 084 085 092 056 058 099 059"
).split()

# 11-digit numbers renumbered to 10 digits in 2018 (new prefix -> old one): older systems keep the old number
OLD_MOBILE = {
    "032": "0162", "033": "0163", "034": "0164", "035": "0165", "036": "0166", "037": "0167", "038": "0168",
    "039": "0169", "070": "0120", "079": "0121", "077": "0122", "076": "0126", "078": "0128", "083": "0123",
    "084": "0124", "085": "0125", "081": "0127", "082": "0129", "056": "0186", "058": "0188", "059": "0199",
}

# ------------------------------------------------------------------------------------- CCCD, BHYT, BHXH
# province of birth registration: HCMC (079) for most, the provinces people move from for the others
OTHER_PROVINCES = (
    "001 031 036 038 040 042 044 046 048 049 051 052 054 056 058 060 062 064 066 068 070 072 074 075 077 "
    "080 082 083 084 086 087 089 091 092 093 094 095 096"
).split()
# benefit level (1-5) of each card category (BHXH Việt Nam, QĐ 1351/QĐ-BHXH)
BENEFIT = {"CC": 1, "TE": 1, "CK": 2, "HN": 2, "BT": 2, "HT": 3, "CN": 3, "DN": 4, "HC": 4, "GD": 4,
           "HS": 4, "SV": 4, "XK": 4, "NO": 4, "TN": 4, "QN": 5, "CA": 5}
# the category a person's card is likely to have at an age: (up to age, ((category, weight), ...))
CATEGORIES_BY_AGE: tuple[tuple[int, tuple[tuple[str, float], ...]], ...] = (
    (5, (("TE", 1.0),)),
    (17, (("HS", 0.9), ("HN", 0.05), ("CN", 0.05))),
    (22, (("SV", 0.5), ("DN", 0.25), ("GD", 0.2), ("HN", 0.05))),
    (59, (("DN", 0.5), ("HC", 0.1), ("GD", 0.2), ("HN", 0.04), ("CN", 0.04), ("XK", 0.04), ("NO", 0.04),
          ("QN", 0.02), ("CA", 0.02))),
    (200, (("HT", 0.45), ("GD", 0.25), ("BT", 0.12), ("CK", 0.06), ("CC", 0.04), ("HN", 0.04), ("CN", 0.04))),
)
