import xpbp, sys
ok = err = 0
for i in range(2000):
    try: xpbp.load("cur", device="cpu"); ok += 1
    except ValueError: err += 1
print("ok", ok, "refused", err)
