# Generates pil_resample.json (Pillow 9.4, Debian python3-pil): known answers for resample_test.ts.
# Run: /usr/bin/python3 datasets/testdata/pil_resample.py > datasets/testdata/pil_resample.json
from PIL import Image
import numpy as np, json
W,H=13,11
a=np.zeros((H,W,3),np.uint8)
for y in range(H):
  for x in range(W):
    for c in range(3):
      a[y,x,c]=(x*37+y*91+c*53+x*y*7)%256
im=Image.fromarray(a,"RGB")
out={}
def rb(box,size):
  r=im.crop(box).resize(size,Image.BICUBIC)
  return np.asarray(r).reshape(-1).tolist()
out["down_5x7"]=rb((0,0,W,H),(5,7))
out["up_20x9"]=rb((0,0,W,H),(20,9))
out["crop_2_3_9x6_to_4x4"]=rb((2,3,11,9),(4,4))
out["crop_1_0_12x11_to_12x5"]=rb((1,0,13,11),(12,5))
l=np.zeros((H,W),np.uint8)
for y in range(H):
  for x in range(W): l[y,x]=(x*3+y*17)%151
lim=Image.fromarray(l,"L")
out["nearest_7x5"]=np.asarray(lim.resize((7,5),Image.NEAREST)).reshape(-1).tolist()
out["nearest_crop_up_9x14"]=np.asarray(lim.crop((1,2,12,10)).resize((9,14),Image.NEAREST)).reshape(-1).tolist()
print(json.dumps(out))
