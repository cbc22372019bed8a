from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('realtime', '0005_read_cursors_and_mentions'),
    ]

    operations = [
        migrations.CreateModel(
            name='ImportedRecord',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(max_length=16)),
                ('original', models.CharField(max_length=255)),
                ('local_id', models.CharField(max_length=64)),
                ('imported_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('kind', 'original'), name='imported_record_unique')],
            },
        ),
    ]
