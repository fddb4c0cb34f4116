# Generates pil_transforms.json (Pillow 9.4 + numpy, Debian python3-pil): known answers for
# transforms_test.ts, written as torchvision does on PIL images (Resize/CenterCrop/resized_crop).
# Run: /usr/bin/python3 datasets/testdata/pil_transforms.py > datasets/testdata/pil_transforms.json
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
# eval: Resize(9) (short side 11 -> 9, long int(9*13/11)=10) then CenterCrop(8): top round(0.5)=0, left round(1.0)=1
r=im.resize((10,9),Image.BICUBIC).crop((1,0,9,8))
out["eval_8"]=np.asarray(r).reshape(-1).tolist()
# train with box top 2 left 3 h 7 w 9 -> 6x4 (W x H), flipped
r=im.crop((3,2,12,9)).resize((6,4),Image.BICUBIC).transpose(Image.FLIP_LEFT_RIGHT)
out["rrc_flip_6x4"]=np.asarray(r).reshape(-1).tolist()
# normalisation in float32 like ToTensor + Normalize
mean=np.array([0.485,0.456,0.406],np.float32); std=np.array([0.229,0.224,0.225],np.float32)
u=np.array([0,1,128,254,255],np.float32)
out["normalize"]=[((u/np.float32(255))-mean[c])/std[c] for c in range(3)]
out["normalize"]=[[float(v) for v in row.astype(np.float32)] for row in out["normalize"]]
print(json.dumps(out))
